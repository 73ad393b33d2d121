//! Threshold alert rules as the rules API carries them: `GET|PUT|DELETE /api/ws/metrics/rules`
//! on the gateway, `sb.api.aggregator.{rules,put_rules,reset_rules}` on the bus.
//!
//! A rule is `{name, metric, op, threshold, severity, cooldown_ms?}`: a sample of a metric
//! matching `metric` (a name, or a pattern with `*` for one segment and `>` for the rest)
//! whose value compares with `threshold` by `op` (`>`, `>=`, `<`, `<=`) raises a
//! `threshold_exceeded` alert of `severity`, at most once per cool-down per metric.
//!
//! A `PUT` body arrives as [`AlertRuleDraft`]s, loosely typed so that an unknown `op` or a
//! missing threshold is answered with the rule and the problem ([`RuleProblem`], error code
//! `invalid_rule`) rather than a bare parse error; [`validate_rules`] turns drafts into
//! [`AlertRule`]s. Gateway and aggregator run the same check.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Comparison, Severity};

/// Most rules one set may hold.
pub const MAX_ALERT_RULES: usize = 100;
/// Longest rule name, in bytes.
pub const MAX_RULE_NAME_BYTES: usize = 64;
/// Longest accepted cool-down: one day.
pub const MAX_RULE_COOLDOWN_MS: u64 = 24 * 3_600_000;

/// One threshold rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique within the set: 1–64 bytes of `A-Z a-z 0-9 _ - .`.
    pub name: String,
    /// A metric name, or a pattern with `*` (one segment) and `>` (the rest).
    pub metric: String,
    /// `>`, `>=`, `<` or `<=`.
    #[serde(with = "op_symbol")]
    pub op: Comparison,
    /// The threshold, a finite number.
    pub threshold: f64,
    /// The alerts' severity.
    pub severity: Severity,
    /// The rule's cool-down in ms (one alert per metric per cool-down); the aggregator's
    /// `threshold_cooldown` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<u64>,
}

/// Where the rules in force come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesSource {
    /// Set at run time through the rules API, kept in the store.
    Store,
    /// `[[aggregator.thresholds]]` in the aggregator's configuration file.
    File,
    /// The built-in defaults of seed 001 ([`default_rules`]).
    Defaults,
}

/// The reply of every rules method: the rules in force after the call and their source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesReply {
    /// The rules, in the order they were set.
    pub rules: Vec<AlertRule>,
    /// `store`, `file` or `defaults`.
    pub source: RulesSource,
}

/// `rules` (list) and `reset_rules` (drop the stored set, back to file or default rules):
/// no parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesRequest {}

/// `put_rules`: replaces the whole stored set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRulesRequest {
    /// The new set (may be empty: no threshold alerts at all).
    pub rules: Vec<AlertRuleDraft>,
}

/// A rule as a client sent it, before [`validate_rules`]. Missing text fields read as empty
/// and a threshold that is not a number as absent, so each is reported as a [`RuleProblem`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleDraft {
    /// See [`AlertRule::name`].
    #[serde(default)]
    pub name: String,
    /// See [`AlertRule::metric`].
    #[serde(default)]
    pub metric: String,
    /// See [`AlertRule::op`].
    #[serde(default)]
    pub op: String,
    /// See [`AlertRule::threshold`]; `None` when absent or not a number.
    #[serde(default, deserialize_with = "number_or_none")]
    pub threshold: Option<f64>,
    /// See [`AlertRule::severity`].
    #[serde(default)]
    pub severity: String,
    /// See [`AlertRule::cooldown_ms`].
    #[serde(default)]
    pub cooldown_ms: Option<u64>,
}

impl From<&AlertRule> for AlertRuleDraft {
    fn from(rule: &AlertRule) -> Self {
        Self {
            name: rule.name.clone(),
            metric: rule.metric.clone(),
            op: op_symbol::as_str(rule.op).to_owned(),
            threshold: Some(rule.threshold),
            severity: severity_name(rule.severity).to_owned(),
            cooldown_ms: rule.cooldown_ms,
        }
    }
}

/// What is wrong with a rule set; [`RuleProblem::reason`] is the machine-readable name the
/// gateway sends next to the code `invalid_rule`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// More than [`MAX_ALERT_RULES`] rules.
    #[error("at most {MAX_ALERT_RULES} rules")]
    TooManyRules,
    /// A rule without a name.
    #[error("rules[{index}]: name is required")]
    EmptyName {
        /// Position in the set.
        index: usize,
    },
    /// A name longer than [`MAX_RULE_NAME_BYTES`] or with other characters than `A-Z a-z 0-9 _ - .`.
    #[error("rules[{index}]: name must be 1-64 bytes of A-Z a-z 0-9 _ - .")]
    InvalidName {
        /// Position in the set.
        index: usize,
    },
    /// Two rules with one name.
    #[error("rules[{index}]: name {name:?} is used twice")]
    DuplicateName {
        /// Position of the second one.
        index: usize,
        /// The name.
        name: String,
    },
    /// `metric` is neither a metric name nor a pattern.
    #[error(
        "rules[{index}]: metric must be a dotted name or pattern (* for one segment, > for the rest)"
    )]
    InvalidMetric {
        /// Position in the set.
        index: usize,
    },
    /// `op` is not `>`, `>=`, `<` or `<=`.
    #[error("rules[{index}]: op must be one of >, >=, <, <=")]
    UnknownOp {
        /// Position in the set.
        index: usize,
    },
    /// `threshold` is absent, not a number, NaN or infinite.
    #[error("rules[{index}]: threshold must be a finite number")]
    NonFiniteThreshold {
        /// Position in the set.
        index: usize,
    },
    /// `severity` is not one of the six.
    #[error("rules[{index}]: severity must be info, low, medium, warning, high or critical")]
    UnknownSeverity {
        /// Position in the set.
        index: usize,
    },
    /// `cooldown_ms` is 0 or longer than a day.
    #[error("rules[{index}]: cooldown_ms must be from 1 to 86400000")]
    InvalidCooldown {
        /// Position in the set.
        index: usize,
    },
}

impl RuleProblem {
    /// The problem's stable name (`too_many_rules`, `empty_name`, `invalid_name`,
    /// `duplicate_name`, `invalid_metric`, `unknown_op`, `non_finite_threshold`,
    /// `unknown_severity`, `invalid_cooldown`).
    pub fn reason(&self) -> &'static str {
        match self {
            RuleProblem::TooManyRules => "too_many_rules",
            RuleProblem::EmptyName { .. } => "empty_name",
            RuleProblem::InvalidName { .. } => "invalid_name",
            RuleProblem::DuplicateName { .. } => "duplicate_name",
            RuleProblem::InvalidMetric { .. } => "invalid_metric",
            RuleProblem::UnknownOp { .. } => "unknown_op",
            RuleProblem::NonFiniteThreshold { .. } => "non_finite_threshold",
            RuleProblem::UnknownSeverity { .. } => "unknown_severity",
            RuleProblem::InvalidCooldown { .. } => "invalid_cooldown",
        }
    }

    /// The position of the offending rule; `None` for [`RuleProblem::TooManyRules`].
    pub fn index(&self) -> Option<usize> {
        match self {
            RuleProblem::TooManyRules => None,
            RuleProblem::EmptyName { index }
            | RuleProblem::InvalidName { index }
            | RuleProblem::DuplicateName { index, .. }
            | RuleProblem::InvalidMetric { index }
            | RuleProblem::UnknownOp { index }
            | RuleProblem::NonFiniteThreshold { index }
            | RuleProblem::UnknownSeverity { index }
            | RuleProblem::InvalidCooldown { index } => Some(*index),
        }
    }
}

/// Checks every draft and returns the rules, or the first problem found.
///
/// # Errors
/// The first [`RuleProblem`], in rule order.
pub fn validate_rules(drafts: &[AlertRuleDraft]) -> Result<Vec<AlertRule>, RuleProblem> {
    if drafts.len() > MAX_ALERT_RULES {
        return Err(RuleProblem::TooManyRules);
    }
    let mut names = BTreeSet::new();
    drafts
        .iter()
        .enumerate()
        .map(|(index, draft)| {
            let rule = validate_rule(index, draft)?;
            if !names.insert(rule.name.clone()) {
                return Err(RuleProblem::DuplicateName {
                    index,
                    name: rule.name,
                });
            }
            Ok(rule)
        })
        .collect()
}

fn validate_rule(index: usize, draft: &AlertRuleDraft) -> Result<AlertRule, RuleProblem> {
    if draft.name.is_empty() {
        return Err(RuleProblem::EmptyName { index });
    }
    let name_is_plain = draft.name.len() <= MAX_RULE_NAME_BYTES
        && draft
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_is_plain {
        return Err(RuleProblem::InvalidName { index });
    }
    let metric_is_valid = draft.metric.len() <= super::MAX_METRIC_NAME_BYTES
        && crate::pattern::is_valid_pattern(&draft.metric)
        && draft.metric.split('.').all(|segment| {
            segment == "*"
                || segment == ">"
                || segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !metric_is_valid {
        return Err(RuleProblem::InvalidMetric { index });
    }
    let op = op_symbol::parse(&draft.op).ok_or(RuleProblem::UnknownOp { index })?;
    let threshold = draft
        .threshold
        .filter(|threshold| threshold.is_finite())
        .ok_or(RuleProblem::NonFiniteThreshold { index })?;
    let severity = parse_severity(&draft.severity).ok_or(RuleProblem::UnknownSeverity { index })?;
    if draft
        .cooldown_ms
        .is_some_and(|cooldown| cooldown == 0 || cooldown > MAX_RULE_COOLDOWN_MS)
    {
        return Err(RuleProblem::InvalidCooldown { index });
    }
    Ok(AlertRule {
        name: draft.name.clone(),
        metric: draft.metric.clone(),
        op,
        threshold,
        severity,
        cooldown_ms: draft.cooldown_ms,
    })
}

/// Metric names of the node figures the default rules watch, as the publisher forwards what
/// the node agents report in `current_data` (one series per node, labelled `node_id`).
pub mod watched {
    /// CPU use of a node, 0–100.
    pub const NODE_CPU_PERCENT: &str = "node.cpu_percent";
    /// Memory use of a node, 0–100.
    pub const NODE_MEMORY_PERCENT: &str = "node.memory_used_percent";
}

/// The rules in force when none are stored and the configuration file names none: seed
/// 001's `cpu_usage > 90` (critical, as in its alert example) and memory above 90 %. The
/// seed gives no severity for memory; it is `warning`, the seed's middle colour, so the two
/// defaults are told apart on the dashboard.
pub fn default_rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            name: "cpu_usage".to_owned(),
            metric: watched::NODE_CPU_PERCENT.to_owned(),
            op: Comparison::Gt,
            threshold: 90.0,
            severity: Severity::Critical,
            cooldown_ms: None,
        },
        AlertRule {
            name: "memory_usage".to_owned(),
            metric: watched::NODE_MEMORY_PERCENT.to_owned(),
            op: Comparison::Gt,
            threshold: 90.0,
            severity: Severity::Warning,
            cooldown_ms: None,
        },
    ]
}

fn parse_severity(name: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::Warning,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|severity| severity_name(*severity) == name)
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::Warning => "warning",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// A number, or `None` for anything else (`null`, a string, a boolean), so that the
/// threshold's problem is reported as [`RuleProblem::NonFiniteThreshold`].
fn number_or_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Number(f64),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Loose::deserialize(deserializer)? {
        Loose::Number(number) => Some(number),
        Loose::Other(_) => None,
    })
}

/// `op` written as its symbol.
pub mod op_symbol {
    use super::{Comparison, Deserialize, Deserializer, Serializer};

    /// Returns the symbol (`>`, `>=`, `<`, `<=`).
    pub fn as_str(op: Comparison) -> &'static str {
        match op {
            Comparison::Gt => ">",
            Comparison::Gte => ">=",
            Comparison::Lt => "<",
            Comparison::Lte => "<=",
        }
    }

    /// Parses a symbol.
    pub fn parse(symbol: &str) -> Option<Comparison> {
        match symbol {
            ">" => Some(Comparison::Gt),
            ">=" => Some(Comparison::Gte),
            "<" => Some(Comparison::Lt),
            "<=" => Some(Comparison::Lte),
            _ => None,
        }
    }

    /// Serializes `op` as its symbol.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(op: &Comparison, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(as_str(*op))
    }

    /// Deserializes a symbol.
    ///
    /// # Errors
    /// Anything but `>`, `>=`, `<`, `<=`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Comparison, D::Error> {
        let symbol = String::deserialize(deserializer)?;
        parse(&symbol).ok_or_else(|| serde::de::Error::custom("op must be one of >, >=, <, <="))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(name: &str, op: &str, threshold: Option<f64>) -> AlertRuleDraft {
        AlertRuleDraft {
            name: name.to_owned(),
            metric: "node.cpu_percent".to_owned(),
            op: op.to_owned(),
            threshold,
            severity: "critical".to_owned(),
            cooldown_ms: None,
        }
    }

    #[test]
    fn a_valid_set_becomes_rules_with_op_symbols_on_the_wire() {
        let rules = validate_rules(&[draft("cpu", ">=", Some(80.0))]).unwrap();
        assert_eq!(rules[0].op, Comparison::Gte);
        let json = serde_json::to_value(&rules[0]).unwrap();
        assert_eq!(json["op"], ">=");
        assert_eq!(json["severity"], "critical");
        assert!(json.get("cooldown_ms").is_none());
        let back: AlertRule = serde_json::from_value(json).unwrap();
        assert_eq!(back, rules[0]);
        assert_eq!(
            AlertRuleDraft::from(&rules[0]),
            draft("cpu", ">=", Some(80.0))
        );
    }

    #[test]
    fn each_bad_rule_is_named_with_its_reason_and_index() {
        let cases: Vec<(Vec<AlertRuleDraft>, &str, Option<usize>)> = vec![
            (vec![draft("a", "gt", Some(1.0))], "unknown_op", Some(0)),
            (
                vec![draft("a", ">", Some(f64::NAN))],
                "non_finite_threshold",
                Some(0),
            ),
            (
                vec![draft("a", ">", Some(f64::INFINITY))],
                "non_finite_threshold",
                Some(0),
            ),
            (vec![draft("a", ">", None)], "non_finite_threshold", Some(0)),
            (vec![draft("", ">", Some(1.0))], "empty_name", Some(0)),
            (vec![draft("a b", ">", Some(1.0))], "invalid_name", Some(0)),
            (
                vec![draft("a", ">", Some(1.0)), draft("a", "<", Some(1.0))],
                "duplicate_name",
                Some(1),
            ),
            (
                (0..=MAX_ALERT_RULES)
                    .map(|i| draft(&format!("r{i}"), ">", Some(1.0)))
                    .collect(),
                "too_many_rules",
                None,
            ),
        ];
        for (drafts, reason, index) in cases {
            let problem = validate_rules(&drafts).unwrap_err();
            assert_eq!(
                (problem.reason(), problem.index()),
                (reason, index),
                "{problem}"
            );
        }
        let mut bad_metric = draft("a", ">", Some(1.0));
        bad_metric.metric = "a..b".into();
        let mut bad_severity = draft("a", ">", Some(1.0));
        bad_severity.severity = "urgent".into();
        let mut bad_cooldown = draft("a", ">", Some(1.0));
        bad_cooldown.cooldown_ms = Some(0);
        for (draft, reason) in [
            (bad_metric, "invalid_metric"),
            (bad_severity, "unknown_severity"),
            (bad_cooldown, "invalid_cooldown"),
        ] {
            assert_eq!(validate_rules(&[draft]).unwrap_err().reason(), reason);
        }
    }

    #[test]
    fn a_threshold_that_is_not_a_number_reads_as_absent() {
        let draft: AlertRuleDraft = serde_json::from_str(
            r#"{"name":"a","metric":"m","op":">","threshold":"NaN","severity":"info"}"#,
        )
        .unwrap();
        assert_eq!(draft.threshold, None);
        assert_eq!(
            validate_rules(&[draft]).unwrap_err().reason(),
            "non_finite_threshold"
        );
    }

    #[test]
    fn defaults_are_seed_001s_cpu_and_memory_rules() {
        let rules = default_rules();
        let drafts: Vec<AlertRuleDraft> = rules.iter().map(AlertRuleDraft::from).collect();
        assert_eq!(validate_rules(&drafts).unwrap(), rules);
        assert_eq!(
            (
                rules[0].metric.as_str(),
                rules[0].op,
                rules[0].threshold,
                rules[0].severity
            ),
            ("node.cpu_percent", Comparison::Gt, 90.0, Severity::Critical)
        );
        assert_eq!(
            (rules[1].metric.as_str(), rules[1].threshold),
            ("node.memory_used_percent", 90.0)
        );
    }
}
