//! Integration tests of the publisher on the in-memory bus and store: real tasks, real
//! wall-clock ticks (short intervals), no external processes.

mod health;
mod helpers;
mod inputs;
mod leadership;
mod nodes;
mod streams;
