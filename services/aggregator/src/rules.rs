//! Which threshold rules are in force: the set stored at run time through the rules API
//! (`sb:alert_rules`), else `[[aggregator.thresholds]]` from the configuration file, else
//! seed 001's defaults ([`protocol::metrics::rules::default_rules`]).
//!
//! Every replica reads the stored set at start and re-reads it every
//! `rules_refresh_interval` (and at once after it answered a change itself), so a change
//! made through any replica reaches all of them within that interval and survives their
//! restarts. A store that does not answer leaves the rules in force unchanged.

use std::time::Duration;

use protocol::metrics::rules::{
    AlertRule, AlertRuleDraft, RulesReply, RulesSource, default_rules, validate_rules,
};

use crate::config::{AggregatorConfig, ThresholdRule};

/// The rules in force and where they come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<AlertRule>,
    pub(crate) source: RulesSource,
}

impl RuleSet {
    /// The rules without a stored set: the file's, else the defaults.
    pub(crate) fn configured(config: &AggregatorConfig) -> RuleSet {
        if config.thresholds.is_empty() {
            RuleSet {
                rules: default_rules(),
                source: RulesSource::Defaults,
            }
        } else {
            RuleSet {
                rules: config
                    .thresholds
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| from_file(index, rule))
                    .collect(),
                source: RulesSource::File,
            }
        }
    }

    /// The rules given the stored document (`None`: nothing stored). A document that does
    /// not parse or validate (written by hand, or by a newer version) is ignored with a
    /// warning, so a broken document never silences the configured rules.
    pub(crate) fn resolve(stored: Option<&str>, configured: &RuleSet) -> RuleSet {
        let Some(document) = stored else {
            return configured.clone();
        };
        match decode(document) {
            Some(rules) => RuleSet {
                rules,
                source: RulesSource::Store,
            },
            None => {
                tracing::warn!(
                    "stored alert rules are not a valid rule set; using the configured rules"
                );
                configured.clone()
            }
        }
    }

    pub(crate) fn reply(&self) -> RulesReply {
        RulesReply {
            rules: self.rules.clone(),
            source: self.source,
        }
    }
}

/// The stored form of a rule set: the JSON array of rules.
pub(crate) fn encode(rules: &[AlertRule]) -> Result<String, serde_json::Error> {
    serde_json::to_string(rules)
}

fn decode(document: &str) -> Option<Vec<AlertRule>> {
    let drafts: Vec<AlertRuleDraft> = serde_json::from_str(document).ok()?;
    validate_rules(&drafts).ok()
}

/// A file rule as an API rule; file rules have no name unless given one, so they are named
/// after their position (`threshold_1`, …).
fn from_file(index: usize, rule: &ThresholdRule) -> AlertRule {
    AlertRule {
        name: rule
            .name
            .clone()
            .unwrap_or_else(|| format!("threshold_{}", index + 1)),
        metric: rule.metric.clone(),
        op: rule.comparison,
        threshold: rule.value,
        severity: rule.severity,
        cooldown_ms: rule.cooldown.map(millis),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use protocol::metrics::{Comparison, Severity};

    use super::*;

    #[test]
    fn no_file_rules_means_the_seed_defaults_and_a_stored_set_wins() {
        let configured = RuleSet::configured(&AggregatorConfig::default());
        assert_eq!(configured.source, RulesSource::Defaults);
        assert_eq!(configured.rules, default_rules());

        let stored = encode(&[AlertRule {
            name: "low".into(),
            metric: "x".into(),
            op: Comparison::Lt,
            threshold: 1.0,
            severity: Severity::Info,
            cooldown_ms: Some(1_000),
        }])
        .unwrap();
        let set = RuleSet::resolve(Some(&stored), &configured);
        assert_eq!(set.source, RulesSource::Store);
        assert_eq!(set.rules[0].name, "low");
        assert_eq!(RuleSet::resolve(None, &configured), configured);
        assert_eq!(
            RuleSet::resolve(Some("not json"), &configured),
            configured,
            "a broken document keeps the configured rules"
        );
        assert_eq!(RuleSet::resolve(Some("[]"), &configured).rules, []);
    }

    #[test]
    fn file_rules_are_named_by_position_unless_named() {
        let config = AggregatorConfig {
            thresholds: vec![ThresholdRule {
                name: None,
                metric: "node.cpu_percent".into(),
                comparison: Comparison::Gte,
                value: 80.0,
                severity: Severity::High,
                cooldown: Some(Duration::from_secs(2)),
            }],
            ..AggregatorConfig::default()
        };
        let set = RuleSet::configured(&config);
        assert_eq!(set.source, RulesSource::File);
        assert_eq!(set.rules[0].name, "threshold_1");
        assert_eq!(set.rules[0].cooldown_ms, Some(2_000));
    }
}
