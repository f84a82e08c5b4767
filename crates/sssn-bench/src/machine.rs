//! What the machine is (printed at the top of every run) and the process-level meters the
//! scenarios read: resident memory, CPU time of this process, busy time of the machine.
//! Everything comes from `/proc` (Linux); where a file is missing the meter says so.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Facts about the machine and the run, for the header of the report.
#[derive(Clone, Debug)]
pub struct Facts {
    /// Logical CPUs this process may use.
    pub cores: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Total memory, bytes.
    pub memory_bytes: Option<u64>,
    /// 1-minute load average at the start of the run.
    pub load_average: Option<f64>,
    /// UTC date and time of the run, `YYYY-MM-DD HH:MM`.
    pub date: String,
    /// Commit of the working tree, if known.
    pub commit: Option<String>,
}

impl Facts {
    /// Reads the facts now.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| kib_field(&m, "MemTotal:"))
            .map(|k| k * 1024);
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_bytes,
            load_average: load_average(),
            date: utc_now(),
            commit,
        }
    }

    /// The facts as text lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("date: {} UTC", self.date),
            format!("cpu: {} × {}", self.cores, self.cpu_model),
        ];
        if let Some(m) = self.memory_bytes {
            out.push(format!("memory: {:.1} GiB", m as f64 / (1u64 << 30) as f64));
        }
        if let Some(l) = self.load_average {
            out.push(format!("load average (1 min) at start: {l:.2}"));
        }
        if let Some(c) = &self.commit {
            out.push(format!("commit: {c}"));
        }
        out
    }

    /// The facts as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "date": self.date,
            "cores": self.cores,
            "cpu_model": self.cpu_model,
            "memory_bytes": self.memory_bytes,
            "load_average_1m": self.load_average,
            "commit": self.commit,
        })
    }
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| kib_field(&s, "VmRSS:"))
        .map(|k| k * 1024)
}

/// CPU time (user + system) used so far by every thread of this process, living or
/// ended (`CLOCK_PROCESS_CPUTIME_ID`, nanosecond resolution).
pub fn process_cpu_time() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

/// CPU time of this process and of its waited-for children so far (`/proc/self/stat`,
/// clock ticks of 10 ms), for the summary of what else ran on the machine.
pub fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 here.
    Some(f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?)
}

/// Busy and total clock ticks of the whole machine so far (`/proc/stat`).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = f.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = f.get(3)? + f.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// How busy the machine was between two readings, and how much of that was this process.
#[derive(Clone, Copy, Debug)]
pub struct Busy {
    busy: u64,
    total: u64,
    own: u64,
}

impl Busy {
    /// A reading now.
    pub fn now() -> Option<Self> {
        let (busy, total) = machine_ticks()?;
        Some(Self {
            busy,
            total,
            own: own_cpu_ticks()?,
        })
    }

    /// Text: machine busy X% of its cores, of which Y points were this process.
    pub fn since(&self, cores: usize) -> Option<String> {
        let now = Self::now()?;
        let total = now.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let busy = now.busy.saturating_sub(self.busy) as f64 / total as f64 * 100.0;
        // `total` counts ticks of every core; own ticks are per core too.
        let own = now.own.saturating_sub(self.own) as f64 / total as f64 * 100.0;
        let other = (busy - own).max(0.0);
        Some(format!(
            "during the run the machine's {cores} cores were {busy:.0}% busy: this benchmark {own:.0}%, other processes {other:.0}%"
        ))
    }
}

/// The current UTC date and time as `YYYY-MM-DD HH:MM`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn meters_read_proc() {
        assert!(rss_bytes().is_some_and(|r| r > 0));
        assert!(process_cpu_time().is_some());
        assert!(machine_ticks().is_some());
    }
}
