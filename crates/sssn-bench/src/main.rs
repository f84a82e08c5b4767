//! `sssn-bench`: measures sssn's hot paths next to their baselines in the same run.
//!
//! ```text
//! cargo run --release -p sssn-bench -- [SCENARIO…] [--json] [--quick] [--runs N]
//! ```
//!
//! Without scenario names every scenario runs. Progress goes to stderr; the table (or,
//! with `--json`, one JSON object per figure and line) goes to stdout. A scenario whose
//! backend is not available is reported as skipped, with the reason. The exit status is 1
//! only when a scenario fails (an error, or a count that does not add up); missed speed
//! goals are reported, never fatal.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use sssn_bench::machine::{Busy, Facts};
use sssn_bench::report::{Outcome, table};
use sssn_bench::scenarios::{self, ALL, Config, memory, peers};

/// Measures sssn's hot paths against their baselines, in the same run.
#[derive(Parser, Debug)]
#[command(name = "sssn-bench", version)]
struct Args {
    /// Scenarios to run (default: all): workqueue, scaling, broadcast, shared-reads,
    /// memory, sqlite, http, nats, systems, peers.
    scenarios: Vec<String>,
    /// One JSON object per figure and line on stdout (machine facts go to stderr).
    #[arg(long)]
    json: bool,
    /// Smaller sizes and fewer runs (for CI).
    #[arg(long)]
    quick: bool,
    /// Runs of each measurement and of its baseline (default 5, 2 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Lists the scenarios and exits.
    #[arg(long)]
    list: bool,
    /// Runs with a `tracing` subscriber listening at INFO (spans of every channel
    /// operation recorded and formatted, output thrown away): the cost of tracing on,
    /// with no exporter.
    #[arg(long)]
    tracing: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // Hidden subcommands: the child processes some scenarios measure in.
    let child = match argv.get(1).map(String::as_str) {
        Some(memory::CHILD) => Some(memory::child(&argv[2..])),
        Some(peers::SERVER_CHILD) => Some(peers::server_child(&argv[2..])),
        _ => None,
    };
    if let Some(result) = child {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    if args.list {
        for s in ALL {
            println!("{s}");
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<String> = if args.scenarios.is_empty() {
        ALL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.scenarios.clone()
    };
    if let Some(bad) = selected.iter().find(|s| !ALL.contains(&s.as_str())) {
        eprintln!(
            "unknown scenario '{bad}'; scenarios are: {}",
            ALL.join(", ")
        );
        return ExitCode::from(2);
    }
    let cfg = Config {
        quick: args.quick,
        runs: args.runs.unwrap_or(if args.quick { 2 } else { 5 }).max(1),
    };

    let facts = Facts::read();
    let header = facts.lines().join("\n");
    if args.json {
        eprintln!("{header}");
    } else {
        println!(
            "sssn-bench — {} runs each{}",
            cfg.runs,
            if cfg.quick { ", --quick sizes" } else { "" }
        );
        println!("{header}\n");
    }
    if args.tracing {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .try_init();
    }
    let busy = Busy::now();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for name in &selected {
        eprintln!("[{name}] starting");
        let t = Instant::now();
        let name_owned = name.clone();
        // On a worker thread, like the code it measures.
        let task = rt.spawn(async move { scenarios::run(&name_owned, cfg).await });
        let got = rt.block_on(task).unwrap_or_else(|e| {
            vec![Outcome::Failed {
                scenario: name.clone(),
                error: format!("panicked: {e}"),
            }]
        });
        eprintln!("[{name}] done in {:.1} s", t.elapsed().as_secs_f64());
        if args.json {
            for line in got.iter().flat_map(Outcome::json_lines) {
                println!("{line}");
            }
        }
        outcomes.extend(got);
    }
    let load = busy.and_then(|b| b.since(facts.cores));
    if args.json {
        if let Some(l) = load {
            eprintln!("{l}");
        }
    } else {
        print!("{}", table(&outcomes));
        if let Some(l) = load {
            println!("\n{l}");
        }
    }
    if outcomes.iter().any(|o| matches!(o, Outcome::Failed { .. })) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
