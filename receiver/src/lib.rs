//! alertgate-receiver (work in progress).
