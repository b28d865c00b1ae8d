//! Text made from what the bridge holds, for people and models alike: the schema as the model
//! sees it and `describe_schema` shows it ([`schema`]), and the snapshot summary of the
//! command line ([`summary`]); answers, results and errors as text, the same for the MCP
//! text block and the command line ([`answer`], rows as a table: [`table`]).

pub mod answer;
pub mod schema;
pub mod summary;
pub mod table;
