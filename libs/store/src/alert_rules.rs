//! The aggregator's threshold alert rules set at run time: one document, opaque to the
//! store (the aggregator writes the rule set as JSON), so every replica reads the same set
//! and it survives their restarts.
//!
//! With the default key prefix `sb`, the document is the string `sb:alert_rules` (no TTL).

use std::sync::{Mutex, PoisonError};

use crate::{Backend, Store, StoreError};

impl Store {
    /// Returns the stored alert rules document, or `None` when none is set.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn alert_rules(&self) -> Result<Option<String>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.alert_rules.get()),
            Backend::Redis(redis) => {
                let mut command = redis::cmd("GET");
                command.arg(key(redis.key_prefix()));
                redis.query(&command).await
            }
        }
    }

    /// Stores `document` as the alert rules, replacing any earlier one.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn put_alert_rules(&self, document: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.alert_rules.set(Some(document.to_owned()));
                Ok(())
            }
            Backend::Redis(redis) => {
                let mut command = redis::cmd("SET");
                command.arg(key(redis.key_prefix())).arg(document);
                redis.query::<String>(&command).await.map(|_| ())
            }
        }
    }

    /// Deletes the stored alert rules; returns whether there were any.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn delete_alert_rules(&self) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.alert_rules.set(None).is_some()),
            Backend::Redis(redis) => {
                let mut command = redis::cmd("DEL");
                command.arg(key(redis.key_prefix()));
                redis
                    .query::<i64>(&command)
                    .await
                    .map(|deleted| deleted > 0)
            }
        }
    }
}

fn key(prefix: &str) -> String {
    format!("{prefix}alert_rules")
}

/// The in-memory document.
#[derive(Debug, Default)]
pub(crate) struct MemoryAlertRules {
    document: Mutex<Option<String>>,
}

impl MemoryAlertRules {
    fn get(&self) -> Option<String> {
        self.document
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the document and returns the previous one.
    fn set(&self, document: Option<String>) -> Option<String> {
        let mut held = self.document.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *held, document)
    }
}
