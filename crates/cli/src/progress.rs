//! The CLI's one progress renderer, in the shape of BuildKit's progress UI: builds and
//! booting builders (`create --bootstrap`, `inspect --bootstrap`) both go through
//! [`printer::Printer`]; a booting node is one client-side step (`[internal] booting
//! buildkit`) whose driver's bootstrap events become its sub-steps.

pub mod colors;
pub mod printer;
pub mod source;
