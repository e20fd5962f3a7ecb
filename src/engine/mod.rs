//! The engine: event-sourced and pure. `decide(state, command) -> events + effects` holds every
//! rule; `State::apply(event)` only records. A live run, a resumed run and a replay all fold the
//! same events, so they show the same state.

pub mod action;
pub mod decide;
pub mod drift;
pub mod events;
pub mod facts;
pub mod gates;
pub mod halves;
pub mod impact;
pub mod narrate;
pub mod plan;
pub mod recorded;
pub mod report;
pub mod state;
pub mod who;

pub use decide::{Decision, Effect, Refused, decide};
pub use events::{Command, Event, Failure, HardStop, Intent, Outcome, RunStarted};
pub use state::State;
pub use who::Who;
