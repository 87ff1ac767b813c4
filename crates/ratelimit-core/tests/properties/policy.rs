//! Policy properties (filled below).
