//! `sssn-bench`: measures sssn's hot paths next to their baselines in the same run.

fn main() {
    println!("sssn-bench: no scenarios yet");
}
