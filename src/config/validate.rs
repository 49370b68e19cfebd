//! What a key's type cannot say alone, checked at load: ranges, lengths,
//! one line where a header is made of it, and what one key requires of
//! another. Each error names its key.

use super::{Config, ConfigError, MAX_CONCURRENCY, MAX_TITLE_CHARS};

impl Config {
    /// Checks what a key's type cannot say alone: ranges, lengths, and
    /// what one key requires of another.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.merge_threshold) {
            return Err(ConfigError::Invalid {
                key: "merge_threshold",
                message: "must be between 0 and 1".into(),
            });
        }
        let invalid =
            |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return invalid(
                "concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY} (messages in flight)"),
            );
        }
        if !self.rate_limit.is_finite()
            || !(self.rate_limit == 0.0 || (0.01..=100_000.0).contains(&self.rate_limit))
        {
            return invalid(
                "rate_limit",
                format!(
                    "{} is not a rate: 0 (no limit) or between 0.01 and 100000 messages per second",
                    self.rate_limit
                ),
            );
        }
        if !(1..=3_600_000).contains(&self.retry_base_ms) {
            return invalid(
                "retry_base_ms",
                format!(
                    "{} must be between 1 and 3600000 (an hour)",
                    self.retry_base_ms
                ),
            );
        }
        if !(1..=20).contains(&self.max_attempts) {
            return invalid(
                "max_attempts",
                format!("{} must be between 1 and 20", self.max_attempts),
            );
        }
        for (key, secs) in [
            ("fetch_timeout_secs", self.fetch_timeout_secs),
            ("smtp_timeout_secs", self.smtp_timeout_secs),
            ("http_header_timeout_secs", self.http_header_timeout_secs),
            ("http_request_timeout_secs", self.http_request_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                return invalid(key, format!("{secs} must be between 1 and 3600 seconds"));
            }
        }
        // Every other count and duration, bounded so that no arithmetic on
        // it can overflow (a date a billion days away panics) and no list
        // or loop sized by it can exhaust the machine.
        for (key, value, low, high, unit) in [
            (
                "summary_sentences",
                self.summary_sentences as u64,
                1,
                50,
                "sentences",
            ),
            ("summary_words", self.summary_words as u64, 0, 2000, "words"),
            ("max_stories", self.max_stories as u64, 1, 1000, "stories"),
            ("top_stories", self.top_stories as u64, 0, 1000, "stories"),
            (
                "soft_bounce_limit",
                u64::from(self.soft_bounce_limit),
                1,
                1000,
                "bounces",
            ),
            ("confirm_days", u64::from(self.confirm_days), 1, 365, "days"),
            (
                "worker_lease_secs",
                self.worker_lease_secs,
                2,
                3600,
                "seconds",
            ),
            (
                "subscribe_limit_per_hour",
                u64::from(self.subscribe_limit_per_hour),
                1,
                100_000,
                "sign-ups",
            ),
            (
                "feed_failure_threshold",
                u64::from(self.feed_failure_threshold),
                1,
                1000,
                "failures",
            ),
            (
                "transformer.batch_size",
                self.transformer.batch_size as u64,
                1,
                256,
                "articles",
            ),
        ] {
            if !(low..=high).contains(&value) {
                return invalid(
                    key,
                    format!("{value} must be between {low} and {high} {unit}"),
                );
            }
        }
        if !(0..=1_000_000).contains(&self.max_edition_age_days) {
            return invalid(
                "max_edition_age_days",
                format!(
                    "{} must be between 0 and 1000000 days",
                    self.max_edition_age_days
                ),
            );
        }
        if self.title.chars().count() > MAX_TITLE_CHARS || self.title.chars().any(char::is_control)
        {
            return invalid(
                "title",
                format!("at most {MAX_TITLE_CHARS} characters, on one line"),
            );
        }
        if let Some(list_id) = &self.list_id {
            if list_id.len() > 200 || list_id.chars().any(char::is_control) {
                return invalid("list_id", "at most 200 characters, on one line".into());
            }
        }
        let base_ok = self.base_url.len() <= 500
            && !self
                .base_url
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            && url::Url::parse(&self.base_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !base_ok {
            return invalid(
                "base_url",
                format!(
                    "{:?} is not an http(s) URL on one line (at most 500 characters)",
                    self.base_url.chars().take(80).collect::<String>()
                ),
            );
        }
        if self.dkim_key_file.is_some() && self.dkim_selector.is_none() {
            return invalid(
                "dkim_selector",
                "dkim_key_file is set: name the selector its public key is published under".into(),
            );
        }
        for (key, value) in [
            ("dkim_selector", &self.dkim_selector),
            ("dkim_domain", &self.dkim_domain),
        ] {
            if let Some(v) = value {
                if !is_dns_name(v) {
                    return invalid(key, format!("{v:?} is not a DNS name"));
                }
            }
        }
        for editor in &self.editors {
            if editor.chars().any(|c| c.is_control()) || editor.parse::<lettre::Address>().is_err()
            {
                return invalid("editors", format!("{editor:?} is not an email address"));
            }
        }
        if let Some(bounce) = &self.bounce_address {
            let ok = !bounce.chars().any(|c| c.is_control() || c.is_whitespace())
                && bounce
                    .parse::<lettre::Address>()
                    .is_ok_and(|a| !a.user().contains('+'));
            if !ok {
                return invalid(
                    "bounce_address",
                    format!("{bounce:?} is not an email address without a '+' (the subscriber's token goes after one)"),
                );
            }
        }
        if let (Some(bounce), Some(mailto)) = (&self.bounce_address, &self.unsubscribe_mailto) {
            if bounce.eq_ignore_ascii_case(mailto) {
                return invalid(
                    "unsubscribe_mailto",
                    format!("{mailto:?} is also bounce_address: replies and automatic replies to a bounce address would read as requests to unsubscribe; give each its own address"),
                );
            }
        }
        if let Some(mailto) = &self.unsubscribe_mailto {
            if mailto.chars().any(|c| c.is_control() || c.is_whitespace())
                || mailto.parse::<lettre::Address>().is_err()
            {
                return invalid(
                    "unsubscribe_mailto",
                    format!("{mailto:?} is not an email address"),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.transformer.min_overlap) {
            return Err(ConfigError::Invalid {
                key: "transformer.min_overlap",
                message: "must be between 0 and 1".into(),
            });
        }
        Ok(())
    }
}

/// Whether `v` is a DNS name (dot-separated labels of letters, digits,
/// `-` and `_`, each 1-63 long, 253 at most in all): what a DKIM selector
/// and domain must be.
pub fn is_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}
