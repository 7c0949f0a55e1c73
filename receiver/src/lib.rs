//! alertgate-receiver (work in progress).

pub mod normalize;
pub mod order;
