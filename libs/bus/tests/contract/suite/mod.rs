//! The behaviours every backend must show. Each takes the fixture by value.

mod delivery;
mod flow;
mod requests;

pub use delivery::*;
pub use flow::*;
pub use requests::*;
