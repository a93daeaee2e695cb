//! HTTP semantics of static responses, as pure functions of headers and validators
//! (RFC 9110): preconditions, ranges, content coding. One small module per feature.

pub mod conditional;
pub mod encoding;
pub mod range;
