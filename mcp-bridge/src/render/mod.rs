//! Text made from what the bridge holds, for people and models alike: the schema as the model
//! sees it and `describe_schema` shows it ([`schema`]), and the snapshot summary of the
//! command line ([`summary`]).

pub mod schema;
pub mod summary;
