//! What one request costs, and the reservation that holds it until it is settled.

use crate::algorithm::Ticket;
use crate::time::Nanos;

use super::MAX_LIMITS;

/// The cost of one request: requests (normally 1) plus estimated input and output tokens.
///
/// ```
/// use ratelimit_core::Cost;
/// let cost = Cost::request(1_200, 500); // prompt estimate, max_tokens
/// assert_eq!((cost.requests, cost.input_tokens, cost.output_tokens), (1, 1_200, 500));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cost {
    /// Requests (1 for one API call).
    pub requests: u64,
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
}

impl Cost {
    /// Costs nothing.
    pub const NONE: Self = Self {
        requests: 0,
        input_tokens: 0,
        output_tokens: 0,
    };

    /// One request with no tokens counted.
    pub const ONE_REQUEST: Self = Self {
        requests: 1,
        input_tokens: 0,
        output_tokens: 0,
    };

    /// One request with the given input and output tokens.
    #[must_use]
    pub const fn request(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            requests: 1,
            input_tokens,
            output_tokens,
        }
    }
}

/// Capacity granted (or promised, for a future instant) to one request across every dimension of
/// a policy. Settle it with [`Policy::adjust`](crate::Policy::adjust),
/// [`Policy::release`](crate::Policy::release) or [`Policy::cancel`](crate::Policy::cancel).
///
/// Deliberately not `Clone`: one reservation is settled once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation holds capacity until it is released or cancelled"]
pub struct Reservation {
    pub(crate) at: Nanos,
    pub(crate) cost: Cost,
    pub(crate) tickets: [Ticket; MAX_LIMITS],
    pub(crate) slots: u64,
    pub(crate) seq: u64,
    pub(crate) prev_horizon: Nanos,
}

impl Reservation {
    /// The instant from which the request may go.
    #[must_use]
    pub fn ready_at(&self) -> Nanos {
        self.at
    }

    /// The cost currently held (the estimate, or the actual usage after an adjustment).
    #[must_use]
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// Whether it holds concurrency slots (it has been started).
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.slots > 0
    }

    /// Units this reservation holds in limit `index`, after adjustments.
    #[must_use]
    pub fn held(&self, index: usize) -> u64 {
        self.tickets.get(index).map_or(0, Ticket::amount)
    }
}
