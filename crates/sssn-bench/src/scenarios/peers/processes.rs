//! Where a system's server runs, and the CPU time of its processes (`/proc`).

use super::*;

/// Where a system's server runs, for its CPU time.
#[derive(Clone, Debug)]
pub(crate) enum Server {
    /// In this process: its CPU time is the client's.
    InProcess,
    /// Processes of this machine, every thread counted.
    Processes {
        /// What they are, for the notes.
        what: String,
        /// Their pids.
        pids: Vec<u32>,
    },
    /// Not measured, and why.
    Unmeasured(String),
}

impl Server {
    /// The server's processes named `what` that own the listening socket on `port`, if
    /// `host` is this machine.
    pub(crate) fn listening(what: &str, host: &str, port: u16) -> Self {
        if !is_loopback(host) {
            return Self::Unmeasured(format!("{what} runs on {host}, not on this machine"));
        }
        match listener_pid(port) {
            Some(pid) => Self::Processes {
                what: format!("{what} (pid {pid}, every thread)"),
                pids: vec![pid],
            },
            None => Self::Unmeasured(format!(
                "no process of this machine owns the socket listening on port {port}"
            )),
        }
    }

    /// CPU time so far of each process (`None` in process or unmeasured).
    pub(super) fn read(&self) -> Option<BTreeMap<u32, Duration>> {
        match self {
            Self::Processes { pids, .. } => {
                let cpu: BTreeMap<u32, Duration> = pids
                    .iter()
                    .filter_map(|&p| Some((p, process_cpu(p)?)))
                    .collect();
                (!cpu.is_empty()).then_some(cpu)
            }
            Self::InProcess | Self::Unmeasured(_) => None,
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Self::InProcess => "in process (counted as client)".to_owned(),
            Self::Processes { what, .. } => what.clone(),
            Self::Unmeasured(why) => format!("not measured: {why}"),
        }
    }
}

/// CPU used between two readings: per process, the difference; a process that appeared
/// in between counts whole.
pub(super) fn server_delta(
    before: &BTreeMap<u32, Duration>,
    after: &BTreeMap<u32, Duration>,
) -> Duration {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or_default()))
        .sum()
}

/// Whether `host` names this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host` and `port` of `host:port` (IPv6 in brackets).
pub(crate) fn host_port(addr: &str, default_port: u16) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => match p.parse() {
            Ok(port) => (h.to_owned(), port),
            Err(_) => (addr.to_owned(), default_port),
        },
        _ => (addr.to_owned(), default_port),
    }
}

/// Run time so far of every living thread of process `pid`, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds); where that file is missing, user +
/// system time from `/proc/<pid>/stat` (10 ms ticks, ended threads included).
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    let mut any = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(v) = s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                ns += v;
                any = true;
            }
        }
    }
    if any {
        return Some(Duration::from_nanos(ns));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f = stat_fields(&stat);
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Fields of a `/proc/<pid>/stat` line after the command name (field 3 first).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default()
}

/// The process owning a socket that listens on TCP `port` (IPv4 or IPv6).
pub(crate) fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (`ADDR:PORT` in hex), st field 3 (0A = LISTEN),
            // inode field 9.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening_here = *state == "0A"
                && local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port);
            if listening_here {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for pid in pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Every process of the machine.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The child processes of `parent`.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_fields(&s).get(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// The command line of `pid`, arguments separated by spaces.
pub(crate) fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}
