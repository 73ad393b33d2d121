//! Keeps `proto/` (the protocol as specification) and `libs/protocol` (its implementation) in
//! step: messages built from the Rust types validate against the JSON Schemas, the schemas'
//! name rules agree with the Rust validators, `proto/error-codes.md` equals the Rust error
//! table, and `proto/asyncapi.yaml` references only schemas that exist.

mod asyncapi;
mod direct;
mod error_codes;
mod invalid;
mod messages;
mod names;
mod node_monitoring;
mod samples;
mod support;
