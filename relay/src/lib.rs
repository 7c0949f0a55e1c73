//! alertgate-relay (work in progress).
