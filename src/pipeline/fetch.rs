//! Fetching the feeds: every configured feed downloaded in parallel, new
//! articles stored for their edition date.

use std::time::Duration;

use chrono::Utc;

use super::{Pipeline, Result};
use crate::config::Config;
use crate::ingest::feeds::{fetch_all, FeedReport};
use crate::ingest::network::FetchPolicy;
use crate::store::Store;

impl Pipeline {
    /// Downloads every configured feed and stores the new articles.
    pub fn fetch(&self) -> Result<Vec<FeedReport>> {
        fetch_feeds(&self.config, &self.store)
    }

    /// Feeds whose failure has lasted `feed_failure_threshold` runs.
    pub fn persistent_failures(&self, reports: &[FeedReport]) -> usize {
        reports
            .iter()
            .filter(|r| r.consecutive_failures >= self.config.feed_failure_threshold)
            .count()
    }
}

fn fetch_feeds(config: &Config, store: &Store) -> Result<Vec<FeedReport>> {
    if config.feeds.is_empty() {
        tracing::info!("no feeds configured");
        return Ok(Vec::new());
    }
    let reports = fetch_all(
        store,
        &config.feeds,
        config.timezone,
        Utc::now(),
        Duration::from_secs(config.fetch_timeout_secs),
        config.feed_failure_threshold,
        &FetchPolicy {
            allow_private: config.allow_private_fetch,
            allow_hosts: config.fetch_allow_hosts.clone(),
        },
    )?;
    for r in &reports {
        match &r.error {
            None => tracing::info!(
                "feed {}: {} ({} new articles)",
                r.name,
                r.status,
                r.new_articles
            ),
            Some(e) => tracing::info!("feed {}: failed: {e}", r.name),
        }
    }
    Ok(reports)
}
