//! Supervision of a service's long-running tasks (STYLE §3): every task is owned by one
//! [`Supervisor`], the first one that fails or panics is reported (by name) so the service
//! can stop the others, drain, and return an error — which [`crate::main`] turns into exit
//! status 1, so an orchestrator restarts the process instead of leaving it half alive.
//!
//! ```no_run
//! # use service::supervise::{Supervisor, TaskFailure};
//! # use tokio_util::sync::CancellationToken;
//! # async fn heartbeat(_stop: CancellationToken) {}
//! # async fn example(shutdown: CancellationToken) -> Result<(), TaskFailure> {
//! let work = shutdown.child_token();
//! let mut tasks = Supervisor::new();
//! tasks.spawn_plain("heartbeat", heartbeat(work.clone()));
//! let failure = tasks.watch(&work).await;
//! work.cancel();
//! let late = tasks.drain(std::time::Duration::from_secs(5)).await;
//! failure.or(late).map_or(Ok(()), Err)
//! # }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// How a supervised task ended other than cleanly.
#[derive(Debug, thiserror::Error)]
pub enum TaskFailure<E = Infallible> {
    /// The task returned an error.
    #[error("task {task} failed")]
    Failed {
        /// The task's name.
        task: String,
        /// What it returned.
        #[source]
        error: E,
    },
    /// The task panicked (a bug).
    #[error("task {task} panicked")]
    Panicked {
        /// The task's name.
        task: String,
        /// The panic, with its message.
        #[source]
        error: JoinError,
    },
}

impl<E> TaskFailure<E> {
    /// Returns the failed task's name.
    pub fn task(&self) -> &str {
        match self {
            TaskFailure::Failed { task, .. } | TaskFailure::Panicked { task, .. } => task,
        }
    }

    /// The outcome of a service whose first failure was `failure`: a task's own error is the
    /// service's (it already says what failed); a panic becomes the error `panicked` builds
    /// from the task's name and the panic.
    ///
    /// # Errors
    /// The failed task's error, or the one `panicked` builds.
    pub fn into_outcome(
        failure: Option<Self>,
        panicked: impl FnOnce(String, JoinError) -> E,
    ) -> Result<(), E> {
        match failure {
            None => Ok(()),
            Some(TaskFailure::Failed { error, .. }) => Err(error),
            Some(TaskFailure::Panicked { task, error }) => Err(panicked(task, error)),
        }
    }

    /// Describes a task that was joined outside a [`Supervisor`]: `None` when it ended
    /// cleanly.
    pub fn from_joined(task: &str, joined: Result<Result<(), E>, JoinError>) -> Option<Self> {
        match joined {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(TaskFailure::Failed {
                task: task.to_owned(),
                error,
            }),
            Err(error) => Some(TaskFailure::Panicked {
                task: task.to_owned(),
                error,
            }),
        }
    }
}

/// Owns a service's long-running tasks, each with a name for the logs and the error.
pub struct Supervisor<E = Infallible> {
    tasks: JoinSet<Result<(), E>>,
    names: HashMap<Id, String>,
}

impl<E: Send + 'static> Default for Supervisor<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Send + 'static> Supervisor<E> {
    /// Returns an empty supervisor.
    pub fn new() -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// Spawns `task`, named `name`.
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name.into());
    }

    /// Spawns a task that cannot fail other than by panicking, named `name`.
    pub fn spawn_plain<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            task.await;
            Ok(())
        });
    }

    /// Returns how many tasks have not been reaped yet.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Returns whether every task has been reaped.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for the first task that fails or panics; tasks that end cleanly are reaped on
    /// the way. `None` once every task has ended cleanly.
    pub async fn first_failure(&mut self) -> Option<TaskFailure<E>> {
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let (id, result) = match joined {
                Ok((id, result)) => (id, Ok(result)),
                Err(error) => (error.id(), Err(error)),
            };
            let name = self.names.remove(&id).unwrap_or_else(|| format!("{id}"));
            if let Some(failure) = TaskFailure::from_joined(&name, result) {
                return Some(failure);
            }
        }
        None
    }

    /// Waits until `stop` is cancelled (`None`) or a task fails or panics (logged and
    /// returned; the caller cancels the others). Also `None` when every task has ended
    /// cleanly before `stop`.
    pub async fn watch(&mut self, stop: &CancellationToken) -> Option<TaskFailure<E>>
    where
        E: std::error::Error + 'static,
    {
        let failure = tokio::select! {
            () = stop.cancelled() => None,
            failure = self.first_failure() => failure,
        };
        if let Some(failure) = &failure {
            error!(task = failure.task(), error = %crate::error_chain(failure), "task failed; stopping");
        }
        failure
    }

    /// Waits up to `grace` for every task to end (their stop token should be cancelled
    /// already), then aborts the rest and logs their names. Returns the first failure seen
    /// while waiting: a task that panics on its way out is a bug too.
    pub async fn drain(&mut self, grace: Duration) -> Option<TaskFailure<E>>
    where
        E: std::error::Error + 'static,
    {
        let mut first = None;
        let drained = tokio::time::timeout(grace, async {
            while let Some(failure) = self.first_failure().await {
                error!(task = failure.task(), error = %crate::error_chain(&failure), "task failed while stopping");
                first.get_or_insert(failure);
            }
        })
        .await;
        if drained.is_err() {
            let mut remaining: Vec<&str> = self.names.values().map(String::as_str).collect();
            remaining.sort_unstable();
            warn!(
                cut_off = remaining.len(),
                tasks = ?remaining,
                "shutdown grace reached; cutting off remaining tasks"
            );
            self.tasks.abort_all();
            self.tasks.detach_all();
            self.names.clear();
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("input ended")]
    struct Ended;

    #[tokio::test]
    async fn the_first_failure_is_named_and_the_rest_drain() {
        let stop = CancellationToken::new();
        let mut tasks: Supervisor<Ended> = Supervisor::new();
        let long_stop = stop.clone();
        tasks.spawn_plain("long", async move { long_stop.cancelled().await });
        tasks.spawn("clean", async { Ok(()) });
        tasks.spawn("input", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(Ended)
        });
        let failure = tasks.watch(&stop).await.expect("a failure");
        assert_eq!(failure.task(), "input");
        assert!(matches!(failure, TaskFailure::Failed { error: Ended, .. }));
        stop.cancel();
        assert!(tasks.drain(Duration::from_secs(5)).await.is_none());
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_with_its_message() {
        let stop = CancellationToken::new();
        let mut tasks: Supervisor = Supervisor::new();
        tasks.spawn_plain("heartbeat", async { panic!("boom") });
        let failure = tasks.watch(&stop).await.expect("a failure");
        let text = crate::error_chain(&failure);
        assert!(text.starts_with("task heartbeat panicked"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn drain_cuts_off_what_does_not_stop() {
        let mut tasks: Supervisor = Supervisor::new();
        tasks.spawn_plain("stuck", std::future::pending());
        assert!(tasks.drain(Duration::from_millis(20)).await.is_none());
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(tasks.watch(&stop).await.is_none());
    }
}
