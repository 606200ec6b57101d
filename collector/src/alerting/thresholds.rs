//! Threshold rules over the samples the collector stores (issue 14): what a rule is, the shipped
//! defaults, and how `[[rules]]` in collector.toml is read and checked. Evaluating them is
//! [`eval`]'s job (pure, no clock: every time is a sample's `taken_unix_ms`).
//!
//! A rule fires once per host and subject (a mount point, an app, an app's check) when its
//! condition has held for `for`, measured in sample time, and recovers once when the value is past
//! its clear level (hysteresis; by default the threshold itself).
//!
//! The shipped "critical at 97 %" of a full disk is a second rule (`disk-full-critical`) rather
//! than a level inside `disk-full`: each rule has one level and one severity, and both can be
//! overridden or tuned by name.

pub mod eval;
pub mod fit;

use std::time::Duration;

use fleetdeck_proto::Severity;
use serde::Deserialize;

pub use eval::{Evaluator, OpenThresholds, ResumedThreshold};

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    CpuPercent,
    MemoryUsedPercent,
    SwapUsedPercent,
    LoadPerCore,
    DiskUsedPercent,
    DiskInodesUsedPercent,
    DiskHoursToFull,
    AppCpuPercent,
    AppMemoryBytes,
    AppMemoryLimitPercent,
    CheckLatencyMs,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::CpuPercent,
        Metric::MemoryUsedPercent,
        Metric::SwapUsedPercent,
        Metric::LoadPerCore,
        Metric::DiskUsedPercent,
        Metric::DiskInodesUsedPercent,
        Metric::DiskHoursToFull,
        Metric::AppCpuPercent,
        Metric::AppMemoryBytes,
        Metric::AppMemoryLimitPercent,
        Metric::CheckLatencyMs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::CpuPercent => "cpu.percent",
            Metric::MemoryUsedPercent => "memory.used_percent",
            Metric::SwapUsedPercent => "swap.used_percent",
            Metric::LoadPerCore => "load.per_core",
            Metric::DiskUsedPercent => "disk.used_percent",
            Metric::DiskInodesUsedPercent => "disk.inodes_used_percent",
            Metric::DiskHoursToFull => "disk.hours_to_full",
            Metric::AppCpuPercent => "app.cpu_percent",
            Metric::AppMemoryBytes => "app.memory_bytes",
            Metric::AppMemoryLimitPercent => "app.memory_limit_percent",
            Metric::CheckLatencyMs => "check.latency_ms",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Per app (or per app check): `apps` globs apply.
    pub fn is_app(self) -> bool {
        matches!(
            self,
            Metric::AppCpuPercent
                | Metric::AppMemoryBytes
                | Metric::AppMemoryLimitPercent
                | Metric::CheckLatencyMs
        )
    }

    /// The unit a value is written with in messages.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::LoadPerCore => "",
            Metric::DiskHoursToFull => " h",
            Metric::AppMemoryBytes => " bytes",
            Metric::CheckLatencyMs => " ms",
            _ => "%",
        }
    }
}

/// Which side of the threshold is the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

/// One threshold rule, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    pub direction: Direction,
    /// Fires at (or past) this value: `>=` for above, `<=` for below.
    pub threshold: f64,
    /// Clears strictly past this value (below it for above, above it for below).
    pub clear: f64,
    /// How long the condition must hold, in sample time.
    pub for_: Duration,
    pub severity: Severity,
    /// Globs on the host name; empty: every host.
    pub hosts: Vec<String>,
    /// Globs on the app name (app and check metrics); empty: every app.
    pub apps: Vec<String>,
    /// The fit window of `disk.hours_to_full` (default 6 h).
    pub window: Duration,
}

impl Rule {
    /// Whether `value` is a problem.
    pub fn breached(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value >= self.threshold,
            Direction::Below => value <= self.threshold,
        }
    }

    /// Whether a firing rule's problem is over at `value`.
    pub fn cleared(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value < self.clear,
            Direction::Below => value > self.clear,
        }
    }

    pub fn applies_to_host(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|g| glob_match(g, host))
    }

    pub fn applies_to_app(&self, app: &str) -> bool {
        self.apps.is_empty() || self.apps.iter().any(|g| glob_match(g, app))
    }
}

const DEFAULT_WINDOW: Duration = Duration::from_secs(6 * 3600);

/// A shipped rule: fires past `threshold` held `for_secs`, clears only past `clear` (hysteresis,
/// so a disk at 89.9/90.1 % is one alert, not one a minute).
fn shipped(
    name: &str,
    metric: Metric,
    direction: Direction,
    (threshold, clear): (f64, f64),
    for_secs: u64,
    severity: Severity,
) -> Rule {
    Rule {
        name: name.to_owned(),
        metric,
        direction,
        threshold,
        clear,
        for_: Duration::from_secs(for_secs),
        severity,
        hosts: Vec::new(),
        apps: Vec::new(),
        window: DEFAULT_WINDOW,
    }
}

/// The rules active with no config (issue 14's list). `[[rules]]` with one of these names replaces
/// it; `[alerts] default_rules = false` drops them all.
pub fn default_rules() -> Vec<Rule> {
    use Direction::{Above, Below};
    use Metric::*;
    use Severity::{Critical, Warning};
    vec![
        shipped(
            "disk-full",
            DiskUsedPercent,
            Above,
            (90.0, 85.0),
            300,
            Warning,
        ),
        shipped(
            "disk-full-critical",
            DiskUsedPercent,
            Above,
            (97.0, 95.0),
            300,
            Critical,
        ),
        shipped(
            "inodes-full",
            DiskInodesUsedPercent,
            Above,
            (90.0, 85.0),
            300,
            Warning,
        ),
        shipped(
            "memory-full",
            MemoryUsedPercent,
            Above,
            (95.0, 90.0),
            300,
            Warning,
        ),
        shipped(
            "swap-full",
            SwapUsedPercent,
            Above,
            (80.0, 70.0),
            600,
            Warning,
        ),
        shipped("cpu-busy", CpuPercent, Above, (95.0, 85.0), 900, Warning),
        shipped("load-high", LoadPerCore, Above, (4.0, 3.0), 900, Warning),
        shipped(
            "app-memory-limit",
            AppMemoryLimitPercent,
            Above,
            (90.0, 85.0),
            120,
            Warning,
        ),
        // Predicted full within 24 h; clear once the fit says 48 h or more.
        shipped(
            "disk-predicted-full",
            DiskHoursToFull,
            Below,
            (24.0, 48.0),
            600,
            Warning,
        ),
    ]
}

/// One `[[rules]]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub metric: Option<String>,
    pub above: Option<f64>,
    pub below: Option<f64>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub clear_below: Option<f64>,
    pub clear_above: Option<f64>,
    pub severity: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
    pub window: Option<String>,
}

/// The effective rule set: the shipped ones (unless `defaults` is false), each replaced by a
/// `[[rules]]` entry of the same name, then the other entries in order. Errors are one line
/// naming the rule and the field.
pub fn build_rules(defaults: bool, raw: Vec<RawRule>) -> Result<Vec<Rule>, String> {
    let mut rules = if defaults {
        default_rules()
    } else {
        Vec::new()
    };
    let mut seen: Vec<String> = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let rule = check_rule(i + 1, raw)?;
        if seen.contains(&rule.name) {
            return Err(format!(
                "[[rules]] {:?}: duplicate name: each rule needs its own name (a shipped rule is replaced by one entry of its name)",
                rule.name
            ));
        }
        seen.push(rule.name.clone());
        match rules.iter_mut().find(|r| r.name == rule.name) {
            Some(existing) => *existing = rule,
            None => rules.push(rule),
        }
    }
    Ok(rules)
}

fn parse_duration(at: &str, field: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{at}: {field} = {text:?} is not a duration ({e}); use e.g. \"5m\" or \"30s\"")
    })
}

fn check_rule(index: usize, raw: RawRule) -> Result<Rule, String> {
    let name = raw.name.ok_or(format!(
        "[[rules]] #{index}: `name` is missing: give each rule a name, e.g. name = \"disk-full\""
    ))?;
    let at = format!("[[rules]] {name:?}");
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{at}: name: use 1-64 letters, digits, '-', '_' or '.'"
        ));
    }
    let metric_text = raw.metric.ok_or(format!(
        "{at}: `metric` is missing, e.g. metric = \"disk.used_percent\""
    ))?;
    let metric = Metric::parse(&metric_text).ok_or_else(|| {
        let all: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        format!(
            "{at}: metric = {metric_text:?} is unknown; use one of {}",
            all.join(", ")
        )
    })?;
    let (direction, threshold) = match (raw.above, raw.below) {
        (Some(v), None) => (Direction::Above, v),
        (None, Some(v)) => (Direction::Below, v),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: above and below: give exactly one of them (the side that is a problem)"
            ))
        }
        (None, None) => {
            return Err(format!(
                "{at}: above or below is missing: give the level that is a problem, e.g. above = 90"
            ))
        }
    };
    if !threshold.is_finite() {
        return Err(format!(
            "{at}: {}: must be a finite number",
            direction.as_str()
        ));
    }
    let clear = match (direction, raw.clear_below, raw.clear_above) {
        (_, Some(_), Some(_)) => {
            return Err(format!(
                "{at}: clear_below and clear_above: give at most one (the clear level, on the healthy side)"
            ))
        }
        (Direction::Above, Some(c), None) => {
            if !(c.is_finite() && c <= threshold) {
                return Err(format!(
                    "{at}: clear_below = {c} must be at most above = {threshold} (it clears below a lower level)"
                ));
            }
            c
        }
        (Direction::Below, None, Some(c)) => {
            if !(c.is_finite() && c >= threshold) {
                return Err(format!(
                    "{at}: clear_above = {c} must be at least below = {threshold} (it clears above a higher level)"
                ));
            }
            c
        }
        (Direction::Above, None, Some(_)) => {
            return Err(format!(
                "{at}: clear_above does not go with above: use clear_below (a level under the threshold)"
            ))
        }
        (Direction::Below, Some(_), None) => {
            return Err(format!(
                "{at}: clear_below does not go with below: use clear_above (a level over the threshold)"
            ))
        }
        (_, None, None) => threshold,
    };
    let for_ = match raw.for_.as_deref() {
        None => Duration::ZERO,
        Some(text) => parse_duration(&at, "for", text)?,
    };
    let window = match raw.window.as_deref() {
        None => DEFAULT_WINDOW,
        Some(_) if metric != Metric::DiskHoursToFull => {
            return Err(format!(
                "{at}: window only applies to metric = \"disk.hours_to_full\""
            ))
        }
        Some(text) => {
            let w = parse_duration(&at, "window", text)?;
            if w < Duration::from_secs(60) {
                return Err(format!(
                    "{at}: window = {text:?} is too short: use at least \"1m\" (default \"6h\")"
                ));
            }
            w
        }
    };
    let severity = match raw.severity.as_deref() {
        None | Some("warning") => Severity::Warning,
        Some("critical") => Severity::Critical,
        Some(other) => {
            return Err(format!(
                "{at}: severity = {other:?} is unknown; use \"warning\" or \"critical\""
            ))
        }
    };
    for (field, globs) in [("hosts", &raw.hosts), ("apps", &raw.apps)] {
        for glob in globs {
            check_glob(glob).map_err(|why| format!("{at}: {field}: glob {glob:?} {why}"))?;
        }
    }
    if !raw.apps.is_empty() && !metric.is_app() {
        return Err(format!(
            "{at}: apps only applies to app.* and check.* metrics; use hosts to choose hosts"
        ));
    }
    Ok(Rule {
        name,
        metric,
        direction,
        threshold,
        clear,
        for_,
        severity,
        hosts: raw.hosts,
        apps: raw.apps,
        window,
    })
}

/// Globs are `*` (any run of characters) and `?` (one character) over a name.
fn check_glob(glob: &str) -> Result<(), &'static str> {
    if glob.is_empty() {
        return Err("is empty: use e.g. \"db-*\"");
    }
    if glob.contains(['[', ']', '{', '}', '\\']) {
        return Err("uses [ ] { } or \\, which are not supported: only * and ? are");
    }
    if glob.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    Ok(())
}

pub use fleetdeck_proto::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> Vec<RawRule> {
        #[derive(Deserialize)]
        struct Doc {
            rules: Vec<RawRule>,
        }
        toml::from_str::<Doc>(toml_text).expect("toml").rules
    }

    #[test]
    fn defaults_are_the_issue_list() {
        let rules = build_rules(true, Vec::new()).expect("valid");
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 9, "{names:?}");
        let disk = &rules[0];
        assert_eq!(
            (disk.metric, disk.threshold, disk.for_),
            (Metric::DiskUsedPercent, 90.0, Duration::from_secs(300))
        );
        // Every shipped rule clears past a level of its own (hysteresis), on the right side.
        for r in &rules {
            match r.direction {
                Direction::Above => assert!(r.clear < r.threshold, "{}", r.name),
                Direction::Below => assert!(r.clear > r.threshold, "{}", r.name),
            }
        }
        assert_eq!(disk.clear, 85.0);
        let crit = rules
            .iter()
            .find(|r| r.name == "disk-full-critical")
            .expect("critical");
        assert_eq!((crit.threshold, crit.severity), (97.0, Severity::Critical));
        let pred = rules
            .iter()
            .find(|r| r.metric == Metric::DiskHoursToFull)
            .expect("predicted");
        assert_eq!((pred.direction, pred.threshold), (Direction::Below, 24.0));
        assert!(build_rules(false, Vec::new()).expect("valid").is_empty());
    }

    #[test]
    fn a_rule_of_a_shipped_name_replaces_it() {
        let rules = build_rules(
            true,
            raw("[[rules]]\nname = \"disk-full\"\nmetric = \"disk.used_percent\"\nabove = 80\nfor = \"1m\"\nclear_below = 75\nseverity = \"critical\"\nhosts = [\"db-*\"]\n[[rules]]\nname = \"slow\"\nmetric = \"check.latency_ms\"\nabove = 500\napps = [\"web\"]\n"),
        )
        .expect("valid");
        assert_eq!(rules.len(), 10);
        let disk = &rules[0];
        assert_eq!(
            (disk.threshold, disk.clear, disk.severity),
            (80.0, 75.0, Severity::Critical)
        );
        assert!(disk.applies_to_host("db-1") && !disk.applies_to_host("web-1"));
        assert_eq!(rules[9].name, "slow");
    }

    #[test]
    fn invalid_rules_name_the_rule_and_the_field() {
        for (text, want) in [
            (
                "metric = \"disk.used_percent\"\nabove = 1\n",
                "#1: `name` is missing",
            ),
            (
                "name = \"x\"\nmetric = \"disk.full\"\nabove = 1\n",
                "\"x\": metric = \"disk.full\" is unknown",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 1\nbelow = 2\n",
                "\"x\": above and below",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\n",
                "\"x\": above or below is missing",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 90\nclear_below = 95\n",
                "\"x\": clear_below = 95 must be at most",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 90\nclear_above = 80\n",
                "\"x\": clear_above does not go with above",
            ),
            (
                "name = \"x\"\nmetric = \"disk.hours_to_full\"\nbelow = 24\nclear_above = 20\n",
                "\"x\": clear_above = 20 must be at least",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 90\nfor = \"5 parsecs\"\n",
                "\"x\": for = \"5 parsecs\" is not a duration",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 90\nhosts = [\"db-[12]\"]\n",
                "\"x\": hosts: glob \"db-[12]\"",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 90\nseverity = \"page\"\n",
                "\"x\": severity = \"page\"",
            ),
            (
                "name = \"x\"\nmetric = \"cpu.percent\"\nabove = 90\napps = [\"web\"]\n",
                "\"x\": apps only applies",
            ),
        ] {
            let err = build_rules(true, raw(&format!("[[rules]]\n{text}"))).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let twice = "[[rules]]\nname = \"x\"\nmetric = \"cpu.percent\"\nabove = 1\n";
        let err = build_rules(true, raw(&format!("{twice}{twice}"))).expect_err("dup");
        assert!(err.contains("\"x\": duplicate name"), "{err}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("db-*", "db-1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b?c", "axxbyc"));
        assert!(glob_match("*-prod-*", "eu-prod-7"));
        assert!(!glob_match("db-?", "db-12"));
        assert!(!glob_match("db", "db-1"));
    }
}
