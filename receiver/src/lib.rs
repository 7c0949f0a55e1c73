//! alertgate-receiver (work in progress).

pub mod order;
