//! The cheapest middleware spin-sdk lets one write: the WASI request goes to the next
//! handler as it came and the next handler's WASI response comes back as it came, so no
//! byte of either body enters this component. What remains is the hop itself (the call
//! into the next component, its task, the messages' resources) and the one conversion
//! spin-sdk's `next` makes: a copy of the response's headers into an `http::HeaderMap`.
//!
//! Not `next(request)` with spin-sdk's `http::Request`: wasip3 0.7.1's conversions look
//! for an unstarted body on the message rather than on its body (`downcast_mut` on the
//! `http::Request`), never find one, and so copy both bodies through a task of this
//! component (`crates/middleware` forwards around that).
//!
//! Benchmarks put `hello` behind one, two and three of these (`tests/benches/gateway.rs`)
//! to tell the cost of a hop from the cost of what a real middleware does.

#[cfg(target_arch = "wasm32")]
mod wasm;
