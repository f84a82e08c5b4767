//! Figures, their baselines and goals, and how they are printed (a table for people, one
//! JSON object per line for tools).

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Whether a larger value of a figure is better (a rate) or worse (a cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// A rate (msgs/s): ratio = ours / baseline.
    Higher,
    /// A cost (µs/msg, bytes/msg, % CPU, ms): ratio = baseline / ours, so that a higher
    /// ratio is still better.
    Lower,
}

/// A performance goal of an issue, checked against a figure's median.
#[derive(Clone, Debug, PartialEq)]
pub enum Goal {
    /// `ratio >= x`.
    RatioAtLeast(f64),
    /// `median >= x`.
    AtLeast(f64),
    /// `median <= x`.
    AtMost(f64),
}

impl Goal {
    fn describe(&self, unit: &str) -> String {
        match self {
            Self::RatioAtLeast(x) => format!("ratio ≥ {}", trim(*x)),
            Self::AtLeast(x) => format!("≥ {} {unit}", human(*x)),
            Self::AtMost(x) => format!("≤ {} {unit}", human(*x)),
        }
    }

    fn met(&self, median: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Self::RatioAtLeast(x) => ratio.map(|r| r >= *x),
            Self::AtLeast(x) => Some(median >= *x),
            Self::AtMost(x) => Some(median <= *x),
        }
    }
}

/// One measured figure: our samples and, when there is one, the baseline's samples taken
/// back to back with them in the same run.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Name, `scenario` or `scenario/detail`.
    pub scenario: String,
    /// Unit of the samples.
    pub unit: &'static str,
    /// How to read the samples.
    pub better: Better,
    /// Our samples, one per run.
    pub ours: Vec<f64>,
    /// What the baseline is, and its samples.
    pub baseline: Option<(String, Vec<f64>)>,
    /// Goals of the issues this figure checks.
    pub goals: Vec<Goal>,
    /// What the reader needs to know to read the figure.
    pub note: Option<String>,
}

impl Figure {
    /// A figure without a baseline.
    pub fn new(scenario: impl Into<String>, unit: &'static str, better: Better) -> Self {
        Self {
            scenario: scenario.into(),
            unit,
            better,
            ours: Vec::new(),
            baseline: None,
            goals: Vec::new(),
            note: None,
        }
    }

    /// Sets our samples.
    #[must_use]
    pub fn ours(mut self, samples: Vec<f64>) -> Self {
        self.ours = samples;
        self
    }

    /// Sets the baseline and its samples.
    #[must_use]
    pub fn baseline(mut self, what: impl Into<String>, samples: Vec<f64>) -> Self {
        self.baseline = Some((what.into(), samples));
        self
    }

    /// Adds a goal.
    #[must_use]
    pub fn goal(mut self, goal: Goal) -> Self {
        self.goals.push(goal);
        self
    }

    /// Sets the note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Median of our samples.
    pub fn median(&self) -> f64 {
        median(&self.ours)
    }

    /// Median of the baseline's samples.
    pub fn baseline_median(&self) -> Option<f64> {
        self.baseline.as_ref().map(|(_, s)| median(s))
    }

    /// Ours against the baseline, oriented so that higher is better.
    pub fn ratio(&self) -> Option<f64> {
        let b = self.baseline_median()?;
        let o = self.median();
        let r = match self.better {
            Better::Higher => o / b,
            Better::Lower => b / o,
        };
        r.is_finite().then_some(r)
    }

    /// Whether every goal is met (`None` without goals).
    pub fn goals_met(&self) -> Option<bool> {
        if self.goals.is_empty() {
            return None;
        }
        let (m, r) = (self.median(), self.ratio());
        Some(self.goals.iter().all(|g| g.met(m, r) == Some(true)))
    }

    fn goal_text(&self) -> String {
        if self.goals.is_empty() {
            return String::new();
        }
        let (m, r) = (self.median(), self.ratio());
        self.goals
            .iter()
            .map(|g| {
                let verdict = match g.met(m, r) {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "n/a",
                };
                format!("{} {verdict}", g.describe(self.unit))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The figure as one JSON object.
    pub fn to_json(&self) -> Value {
        let (min, max) = min_max(&self.ours);
        json!({
            "scenario": self.scenario,
            "unit": self.unit,
            "median": self.median(),
            "min": min,
            "max": max,
            "runs": self.ours.len(),
            "baseline": self.baseline.as_ref().map(|(w, _)| w.clone()),
            "baseline_median": self.baseline_median(),
            "baseline_min": self.baseline.as_ref().map(|(_, s)| min_max(s).0),
            "baseline_max": self.baseline.as_ref().map(|(_, s)| min_max(s).1),
            "ratio": self.ratio(),
            "ratio_is": match self.better {
                Better::Higher => "ours / baseline",
                Better::Lower => "baseline / ours",
            },
            "goal": (!self.goals.is_empty()).then(|| self.goal_text()),
            "goal_met": self.goals_met(),
            "note": self.note,
        })
    }
}

/// What a scenario produced.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A measured figure.
    Figure(Figure),
    /// A scenario (or part of one) that could not run here, and why.
    Skipped {
        /// Scenario name.
        scenario: String,
        /// Why it did not run.
        reason: String,
    },
    /// A scenario that ran and failed.
    Failed {
        /// Scenario name.
        scenario: String,
        /// The error.
        error: String,
    },
    /// A table of its own that a scenario renders (the peer table), printed after the
    /// figures.
    Section(Section),
}

/// A scenario's own table: its text for people, one JSON object per row for tools.
#[derive(Clone, Debug)]
pub struct Section {
    /// Scenario name.
    pub scenario: String,
    /// The table with its notes, ready to print.
    pub text: String,
    /// One JSON object per row.
    pub rows: Vec<Value>,
}

impl Outcome {
    /// A skipped scenario.
    pub fn skipped(scenario: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Skipped {
            scenario: scenario.into(),
            reason: reason.into(),
        }
    }

    /// The outcome as one JSON object.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Figure(f) => f.to_json(),
            Self::Skipped { scenario, reason } => json!({
                "scenario": scenario,
                "skipped": reason,
            }),
            Self::Failed { scenario, error } => json!({
                "scenario": scenario,
                "error": error,
            }),
            Self::Section(s) => json!({
                "scenario": s.scenario,
                "rows": s.rows,
            }),
        }
    }

    /// The JSON lines of the outcome: one object, or one per row of a section.
    pub fn json_lines(&self) -> Vec<Value> {
        match self {
            Self::Section(s) => s.rows.clone(),
            other => vec![other.to_json()],
        }
    }
}

impl From<Figure> for Outcome {
    fn from(f: Figure) -> Self {
        Self::Figure(f)
    }
}

/// Median (mean of the two middle values for an even count); NaN when empty.
pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank; NaN when empty.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (q * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn min_max(samples: &[f64]) -> (f64, f64) {
    samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A number for people: `12.3M`, `456k`, `7.89`, `0.0123`.
pub fn human(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    let a = x.abs();
    if a >= 10e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 100e3 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 10e3 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn range(samples: &[f64]) -> String {
    let (lo, hi) = min_max(samples);
    format!("{}–{}", human(lo), human(hi))
}

/// The table for people: one row per figure or skipped scenario, then the notes.
pub fn table(outcomes: &[Outcome]) -> String {
    let header = [
        "figure",
        "unit",
        "median",
        "min–max",
        "baseline",
        "min–max",
        "ratio",
        "goal",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut notes = Vec::new();
    let mut sections = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Section(s) => sections.push(s),
            Outcome::Figure(f) => {
                let (b, br) = match &f.baseline {
                    Some((_, s)) => (human(median(s)), range(s)),
                    None => ("-".to_owned(), String::new()),
                };
                rows.push([
                    f.scenario.clone(),
                    f.unit.to_owned(),
                    human(f.median()),
                    range(&f.ours),
                    b,
                    br,
                    f.ratio()
                        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                    f.goal_text(),
                ]);
                let mut text = String::new();
                if let Some((what, _)) = &f.baseline {
                    let dir = match f.better {
                        Better::Higher => "ratio = ours / baseline",
                        Better::Lower => "ratio = baseline / ours",
                    };
                    let _ = write!(text, "baseline: {what} ({dir}).");
                }
                if let Some(n) = &f.note {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(n);
                }
                if !text.is_empty() {
                    notes.push(format!("{}: {text}", f.scenario));
                }
            }
            Outcome::Skipped { scenario, reason } => {
                let mut row: [String; 8] = Default::default();
                row[0] = scenario.clone();
                row[2] = "skipped".to_owned();
                rows.push(row);
                notes.push(format!("{scenario}: skipped: {reason}"));
            }
            Outcome::Failed { scenario, error } => {
                let mut row: [String; 8] = Default::default();
                row[0] = scenario.clone();
                row[2] = "FAILED".to_owned();
                rows.push(row);
                notes.push(format!("{scenario}: failed: {error}"));
            }
        }
    }
    let mut out = String::new();
    if !rows.is_empty() {
        let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
        // Numbers right-aligned, words left-aligned.
        out += &grid(&header.map(str::to_owned), &rows, &[2, 3, 4, 5, 6]);
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    for s in sections {
        if !out.is_empty() {
            out.push('\n');
        }
        out += &s.text;
    }
    out
}

/// A plain-text table: `header`, a rule, then `rows`; the columns listed in `right` are
/// right-aligned (numbers), the others left-aligned.
pub fn grid(header: &[String], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            if right.contains(&i) {
                let _ = write!(s, "{pad}{c}  ");
            } else {
                let _ = write!(s, "{c}{pad}  ");
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    out += &line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in rows {
        out += &line(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), 50.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&s, 1.0), 100.0);
    }

    #[test]
    fn ratio_is_oriented_so_higher_is_better() {
        let rate = Figure::new("r", "msgs/s", Better::Higher)
            .ours(vec![50.0])
            .baseline("b", vec![100.0]);
        assert_eq!(rate.ratio(), Some(0.5));
        let cost = Figure::new("c", "µs/msg", Better::Lower)
            .ours(vec![2.0])
            .baseline("b", vec![1.0]);
        assert_eq!(cost.ratio(), Some(0.5));
    }

    #[test]
    fn goals_are_checked_against_the_median_and_ratio() {
        let f = Figure::new("x", "msgs/s", Better::Higher)
            .ours(vec![10.0, 30.0, 20.0])
            .baseline("b", vec![100.0])
            .goal(Goal::AtLeast(15.0))
            .goal(Goal::RatioAtLeast(0.3));
        assert_eq!(f.goals_met(), Some(false));
        assert!(f.goal_text().contains("MISSED"));
        let g = Figure::new("y", "bytes/msg", Better::Lower)
            .ours(vec![300.0])
            .goal(Goal::AtMost(400.0));
        assert_eq!(g.goals_met(), Some(true));
    }

    #[test]
    fn sections_print_after_the_figures_and_give_one_json_line_per_row() {
        let section = Outcome::Section(Section {
            scenario: "peers".to_owned(),
            text: "the peer table\n".to_owned(),
            rows: vec![
                json!({"scenario": "peers/a"}),
                json!({"scenario": "peers/b"}),
            ],
        });
        let figure: Outcome = Figure::new("x", "msgs/s", Better::Higher)
            .ours(vec![1.0])
            .into();
        let text = table(&[section.clone(), figure]);
        assert!(text.starts_with("figure"), "{text}");
        assert!(text.ends_with("\nthe peer table\n"), "{text}");
        assert_eq!(table(std::slice::from_ref(&section)), "the peer table\n");
        let lines = section.json_lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["scenario"], "peers/b");
    }

    #[test]
    fn grids_align_words_left_and_numbers_right() {
        let g = grid(
            &["name".to_owned(), "n".to_owned()],
            &[vec!["a".to_owned(), "1000".to_owned()]],
            &[1],
        );
        assert_eq!(g, "name     n\n----  ----\na     1000\n");
    }

    #[test]
    fn skipped_scenarios_say_why_in_json() {
        let o = Outcome::skipped("nats", "NATS not listening on 127.0.0.1:4222");
        let v = o.to_json();
        assert_eq!(v["scenario"], "nats");
        assert_eq!(v["skipped"], "NATS not listening on 127.0.0.1:4222");
        assert!(v.get("median").is_none());
    }
}
