//! Email: one MIME message per subscriber (`message.rs`) and the welcome
//! after confirming (`welcome.rs`), the transports
//! that carry it (`transport.rs`), and the delivery loop that sends each
//! subscriber exactly one copy (`send.rs`); what comes back: bounces,
//! complaints and unsubscribe requests (`bounce/`), and the files and
//! folders they are read from (`mailbox.rs`).

pub mod bounce;
pub mod dkim;
pub mod mailbox;
pub mod message;
pub mod message_id;
pub mod send;
pub mod transport;
pub mod welcome;

pub use message::{validate_address, validate_name, MessageSettings};
pub use message_id::MessageId;
pub use send::{deliver, RunSummary, SendOptions};
pub use transport::{SendError, Transport, TransportSettings};
