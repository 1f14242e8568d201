//! What the HCL/JSON evaluator hands to the model: blocks whose attributes are evaluated
//! values, not yet decoded into targets and groups.

use std::collections::BTreeMap;

use crate::value::Value;

/// The kind of a top-level block that becomes part of the bake model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A `target "NAME" { … }` block.
    Target,
    /// A `group "NAME" { … }` block.
    Group,
}

/// One evaluated `target` or `group` block (after `matrix` expansion: one block per
/// combination, named by its `name` attribute).
#[derive(Debug, Clone, PartialEq)]
pub struct RawBlock {
    /// Target or group.
    pub kind: BlockKind,
    /// The block's name (its label, or for a matrix combination its evaluated `name`).
    pub name: String,
    /// The attributes written in the block, evaluated, by attribute name (`matrix` and
    /// `name` excluded). An attribute set to null is kept as [`Value::Null`].
    pub attributes: BTreeMap<String, Value>,
    /// Where the block is written (`docker-bake.hcl:3,1-15`-style position), for messages.
    pub position: Option<Position>,
}

/// A position in a bake file, for messages in HCL's `FILE:LINE,COL-COL` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file's name as given.
    pub file: String,
    /// 1-based line of the start.
    pub line: usize,
    /// 1-based column of the start.
    pub column: usize,
    /// 1-based line of the end.
    pub end_line: usize,
    /// 1-based column just past the end.
    pub end_column: usize,
}

/// A `variable` block as `--list variables` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableInfo {
    /// The variable's name.
    pub name: String,
    /// Its `description`, if any.
    pub description: Option<String>,
    /// Its declared `type` as buildx lists it (cty's name for the constraint: `list of
    /// string`, `any type`), if any.
    pub type_expr: Option<String>,
    /// Its default value, if any.
    pub default: Option<Value>,
    /// The value in effect (the default, or an environment override parsed by type).
    pub value: Value,
}

/// Everything a set of HCL/JSON bake files evaluates to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawConfig {
    /// Target and group blocks in the order they appear across the files (files in the
    /// order given; a block repeated in a later file appears again, the model merges).
    pub blocks: Vec<RawBlock>,
    /// The variables, in declaration order.
    pub variables: Vec<VariableInfo>,
}
