//! Fault injection shared by every emulator: a queue of [`Fault`]s that the next order requests
//! meet, applied around the venue's own handling so each venue keeps its error bodies.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use warp::http::{HeaderValue, StatusCode};

use super::lock;
use super::request::{json_reply, Reply};

/// A way for the next order request to go wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 with `Retry-After: retry_after_secs`, without acting on the request.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Answer `status` (a 5xx) without acting on the request.
    ServerError {
        /// The status code.
        status: u16,
    },
    /// Act on the request (place the order), then answer `status` anyway: the outcome is
    /// unknown to the client.
    AcceptThenServerError {
        /// The status code.
        status: u16,
    },
    /// Never answer, without acting on the request (the client times out).
    Hang,
    /// Act on the request, then never answer.
    AcceptThenHang,
    /// Act on the request, answer `503`, and from then on answer every request (lookups
    /// included) `503` until [`super::Emulator::set_unreachable`] turns it off: the venue took
    /// the order and then went away.
    AcceptThenUnreachable,
}

/// The faults queued for the next order requests, oldest first, and whether the venue is
/// unreachable altogether.
#[derive(Debug, Default)]
pub struct Faults(Mutex<VecDeque<Fault>>, AtomicBool);

impl Faults {
    /// Every request is answered 503 while this is on.
    pub(crate) fn set_unreachable(&self, on: bool) {
        self.1.store(on, Ordering::SeqCst);
    }

    /// `true` while every request is answered 503.
    pub(crate) fn unreachable(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    /// Queues `fault` for the next `times` order requests.
    pub(crate) fn push(&self, fault: Fault, times: usize) {
        lock(&self.0).extend(std::iter::repeat_n(fault, times));
    }

    /// Forgets every queued fault.
    pub(crate) fn clear(&self) {
        lock(&self.0).clear();
    }

    /// Takes the next queued fault and applies it around `act`, which performs the order request
    /// and builds the normal answer. `error_body` renders the venue's error body for a status.
    /// `None`: never answer.
    pub fn around(
        &self,
        act: impl FnOnce() -> Reply,
        error_body: impl Fn(u16) -> serde_json::Value,
    ) -> Option<Reply> {
        let fault = lock(&self.0).pop_front();
        let status =
            |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match fault {
            None => Some(act()),
            Some(Fault::RateLimited { retry_after_secs }) => {
                let mut reply = json_reply(StatusCode::TOO_MANY_REQUESTS, &error_body(429));
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    reply
                        .headers_mut()
                        .insert(warp::http::header::RETRY_AFTER, v);
                }
                Some(reply)
            }
            Some(Fault::ServerError { status: code }) => {
                Some(json_reply(status(code), &error_body(code)))
            }
            Some(Fault::AcceptThenServerError { status: code }) => {
                let _ = act();
                Some(json_reply(status(code), &error_body(code)))
            }
            Some(Fault::AcceptThenUnreachable) => {
                let _ = act();
                self.set_unreachable(true);
                Some(json_reply(status(503), &error_body(503)))
            }
            Some(Fault::Hang) => None,
            Some(Fault::AcceptThenHang) => {
                let _ = act();
                None
            }
        }
    }
}
