//! What a caller asks a limiter for: a cost, under a key, at a priority.

use ratelimit_core::Cost;

/// How urgently a request should be served when it has to wait.
///
/// Interactive requests are served before batch requests that are waiting, but batch is never
/// starved: see the backend's documentation for its exact share (the in-memory backend serves at
/// least one batch request for every [`BATCH_SHARE`] interactive ones while both wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// A user is waiting: served first.
    #[default]
    Interactive,
    /// Background work (batch jobs): yields to interactive requests, but keeps making progress.
    Batch,
}

/// While both classes wait, one batch request is served after at most this many interactive ones.
pub const BATCH_SHARE: u32 = 4;

impl Priority {
    /// Both classes, highest first.
    pub const ALL: [Self; 2] = [Self::Interactive, Self::Batch];

    /// Index of the class in [`Priority::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Interactive => 0,
            Self::Batch => 1,
        }
    }
}

/// One request to a limiter.
///
/// ```
/// use ratelimit_limiter::{Priority, Request};
/// use ratelimit_core::Cost;
///
/// let req = Request::new(Cost::request(1_000, 500)).key("tenant-42").priority(Priority::Batch);
/// assert_eq!(req.key, "tenant-42");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Which budget: a user, tenant, API key or model. Unkeyed limiters have one budget and
    /// ignore it; the default is the empty key.
    pub key: &'a str,
    /// What the request costs.
    pub cost: Cost,
    /// Its priority class.
    pub priority: Priority,
}

impl Request<'static> {
    /// A request of `cost` on the default key, interactive.
    #[must_use]
    pub fn new(cost: Cost) -> Self {
        Self {
            key: "",
            cost,
            priority: Priority::Interactive,
        }
    }
}

impl<'a> Request<'a> {
    /// Sets the key.
    #[must_use]
    pub fn key<'b>(self, key: &'b str) -> Request<'b> {
        Request {
            key,
            cost: self.cost,
            priority: self.priority,
        }
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
}

impl From<Cost> for Request<'static> {
    fn from(cost: Cost) -> Self {
        Self::new(cost)
    }
}
