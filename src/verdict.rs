//! Ranking findings into a root cause.
