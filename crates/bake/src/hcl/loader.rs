//! buildx's `hclparser.Parse`: variables, functions, top-level attributes and `target` /
//! `group` blocks of merged bake files, resolved lazily in the order references demand,
//! with buildx's cycle detection, matrix expansion, environment overrides and errors.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::hcl::EvalOptions;
use crate::hcl::ast::{self, Attribute, Block, Body, Expr, TraversalStep};
use crate::hcl::diagnostics::{Diag, Span};
use crate::hcl::eval::{Evaluator, Scope, UserFunction};
use crate::hcl::typeexpr;
use crate::hcl::variables;
use crate::raw::{BlockKind, RawBlock, RawConfig, VariableInfo};
use crate::types::{self, Type};
use crate::value::Value;

/// Why resolving something failed: diagnostics, or a plain error buildx wraps into one
/// (`undefined` marks a missing variable or function, which callers may tolerate).
#[derive(Debug)]
enum LoadError {
    Diags(Vec<Diag>),
    Message { text: String, undefined: bool },
}

impl LoadError {
    fn message(text: impl Into<String>) -> LoadError {
        LoadError::Message {
            text: text.into(),
            undefined: false,
        }
    }

    fn undefined(text: impl Into<String>) -> LoadError {
        LoadError::Message {
            text: format!("{}: undefined", text.into()),
            undefined: true,
        }
    }

    fn is_undefined(&self) -> bool {
        matches!(
            self,
            LoadError::Message {
                undefined: true,
                ..
            }
        )
    }

    /// buildx's `wrapErrorDiagnostic`.
    fn wrap(self, summary: &str, subject: Option<&Span>) -> Vec<Diag> {
        match self {
            LoadError::Diags(d) => d,
            LoadError::Message { text, .. } => vec![Diag {
                summary: summary.to_string(),
                detail: text,
                subject: subject.cloned(),
            }],
        }
    }
}

impl From<Vec<Diag>> for LoadError {
    fn from(d: Vec<Diag>) -> Self {
        LoadError::Diags(d)
    }
}

/// A `variable` block.
#[derive(Debug)]
struct VariableDef {
    type_expr: Option<Expr>,
    default: Option<Attribute>,
    description: String,
    validations: Vec<Validation>,
    missing_item: Span,
}

#[derive(Debug)]
struct Validation {
    condition: Option<Expr>,
    error_message: Option<Expr>,
    missing_item: Span,
}

/// A `function` block.
#[derive(Debug)]
struct FunctionDef {
    params: Option<Attribute>,
    variadic: Option<Attribute>,
    result: Option<Attribute>,
    label_span: Span,
}

/// How a target or group attribute is decoded (the Go field types of buildx's structs).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    String,
    Bool,
    ListOfString,
    /// `map[string]*string`: null elements allowed.
    MapOfOptionalString,
    /// `map[string]string`.
    MapOfString,
    /// buildflags' list types (`output`, `cache-from`, …): strings or maps of strings.
    Structured,
}

const TARGET_FIELDS: &[(&str, Field)] = &[
    ("annotations", Field::ListOfString),
    ("args", Field::MapOfOptionalString),
    ("attest", Field::Structured),
    ("cache-from", Field::Structured),
    ("cache-to", Field::Structured),
    ("call", Field::String),
    ("context", Field::String),
    ("contexts", Field::MapOfString),
    ("description", Field::String),
    ("dockerfile", Field::String),
    ("dockerfile-inline", Field::String),
    ("entitlements", Field::ListOfString),
    ("extra-hosts", Field::MapOfOptionalString),
    ("inherits", Field::ListOfString),
    ("labels", Field::MapOfOptionalString),
    ("network", Field::String),
    ("no-cache", Field::Bool),
    ("no-cache-filter", Field::ListOfString),
    ("output", Field::Structured),
    ("platforms", Field::ListOfString),
    ("pull", Field::Bool),
    ("secret", Field::Structured),
    ("shm-size", Field::String),
    ("ssh", Field::Structured),
    ("tags", Field::ListOfString),
    ("target", Field::String),
    ("ulimits", Field::ListOfString),
];

const GROUP_FIELDS: &[(&str, Field)] = &[
    ("description", Field::String),
    ("targets", Field::ListOfString),
];

fn fields(kind: BlockKind) -> &'static [(&'static str, Field)] {
    match kind {
        BlockKind::Target => TARGET_FIELDS,
        BlockKind::Group => GROUP_FIELDS,
    }
}

fn kind_name(kind: BlockKind) -> &'static str {
    match kind {
        BlockKind::Target => "target",
        BlockKind::Group => "group",
    }
}

/// What part of a block a reference needs evaluated.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    All,
    /// Only the evaluation contexts (matrix), for naming.
    Nothing,
    Attr(String),
}

/// The evaluation state of one `target`/`group` block.
#[derive(Debug, Default)]
struct BlockState {
    /// Matrix variables of each combination (one empty map without a matrix).
    contexts: Vec<BTreeMap<String, Value>>,
    outputs: Vec<BTreeMap<String, Value>>,
    done: Vec<BTreeSet<String>>,
    progress: Vec<BTreeSet<String>>,
    names: Option<Vec<String>>,
    /// What references see once buildx has merged later same-named targets into this
    /// one's decoded struct (its `Target.Merge` mutates the first target in place).
    merged_views: Vec<Option<BTreeMap<String, Value>>>,
}

struct TopBlock {
    kind: BlockKind,
    block: Rc<Block>,
}

/// The lazily-resolving evaluator of a set of merged bake files.
struct Loader<'o> {
    opts: &'o EvalOptions,
    builtins: BTreeMap<String, String>,
    vars: BTreeMap<String, Rc<VariableDef>>,
    var_order: Vec<String>,
    attrs: BTreeMap<String, Rc<Attribute>>,
    funcs: BTreeMap<String, Rc<FunctionDef>>,
    blocks: Vec<TopBlock>,
    states: Vec<BlockState>,
    by_name: BTreeMap<(&'static str, String), Vec<usize>>,
    block_types_ready: bool,
    globals: BTreeMap<String, Value>,
    user_functions: BTreeMap<String, UserFunction>,
    progress_v: BTreeSet<String>,
    progress_f: BTreeSet<String>,
    constraints: BTreeMap<String, Type>,
    defaults: BTreeMap<String, Value>,
    /// `target`/`group` while still buildx's initial empty map (no block published).
    unpublished: BTreeSet<String>,
}

/// Evaluates the bodies of merged bake files (in file order) with buildx's semantics.
pub(crate) fn load(bodies: &[Body], opts: &EvalOptions) -> Result<RawConfig, Vec<Diag>> {
    let mut builtins = BTreeMap::from([
        ("BAKE_CMD_CONTEXT".to_string(), opts.cmd_context.clone()),
        (
            "BAKE_LOCAL_PLATFORM".to_string(),
            opts.local_platform.clone(),
        ),
    ]);
    builtins.extend(opts.extra_builtins.clone());
    let mut loader = Loader {
        opts,
        builtins,
        vars: BTreeMap::new(),
        var_order: Vec::new(),
        attrs: BTreeMap::new(),
        funcs: BTreeMap::new(),
        blocks: Vec::new(),
        states: Vec::new(),
        by_name: BTreeMap::new(),
        block_types_ready: false,
        globals: BTreeMap::new(),
        user_functions: BTreeMap::new(),
        progress_v: BTreeSet::new(),
        progress_f: BTreeSet::new(),
        constraints: BTreeMap::new(),
        defaults: BTreeMap::new(),
        unpublished: BTreeSet::new(),
    };
    loader.run(bodies)
}

/// hclsyntax's label-count checks for a block type whose one label is `name`.
fn check_labels(block: &Block, diags: &mut Vec<Diag>) -> bool {
    match block.labels.len() {
        1 => true,
        0 => {
            let brace = Span {
                file: block.def_span.file.clone(),
                start: block.body.missing_item.start,
                end: crate::hcl::diagnostics::Pos {
                    column: block.body.missing_item.start.column + 1,
                    byte: block.body.missing_item.start.byte + 1,
                    ..block.body.missing_item.start
                },
            };
            diags.push(Diag::new(
                format!("Missing name for {}", block.kind),
                format!("All {} blocks must have 1 labels (name).", block.kind),
                &brace,
            ));
            false
        }
        _ => {
            diags.push(Diag::new(
                format!("Extraneous label for {}", block.kind),
                format!(
                    "Only 1 labels (name) are expected for {} blocks.",
                    block.kind
                ),
                &block.label_spans[1],
            ));
            false
        }
    }
}

/// gohcl's strict decoding of a body: attributes not in `allowed` and any nested block are
/// errors.
fn check_strict_body(
    body: &Body,
    allowed: &[&str],
    blocks_allowed: &[&str],
    diags: &mut Vec<Diag>,
) {
    let names: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
    for attr in &body.attributes {
        if !allowed.contains(&attr.name.as_str()) {
            let suggestion = crate::hcl::eval::name_suggestion(&attr.name, &names)
                .map(|s| format!(" Did you mean {}?", types::go_quote(&s)))
                .unwrap_or_default();
            diags.push(Diag::new(
                "Unsupported argument",
                format!(
                    "An argument named {} is not expected here.{suggestion}",
                    types::go_quote(&attr.name)
                ),
                &attr.name_span,
            ));
        }
    }
    for block in &body.blocks {
        if !blocks_allowed.contains(&block.kind.as_str()) {
            diags.push(Diag::new(
                "Unsupported block type",
                format!(
                    "Blocks of type {} are not expected here.",
                    types::go_quote(&block.kind)
                ),
                &block.def_span,
            ));
        }
    }
}

/// A static string (gohcl decoding with no evaluation context).
fn static_string(expr: &Expr) -> Result<String, Vec<Diag>> {
    if let Some(t) = ast::variables(expr).first() {
        let root = Span {
            file: t.span.file.clone(),
            start: t.span.start,
            end: crate::hcl::diagnostics::Pos {
                column: t.span.start.column + t.root.chars().count(),
                byte: t.span.start.byte + t.root.len(),
                ..t.span.start
            },
        };
        return Err(vec![
            Diag::new(
                "Variables not allowed",
                "Variables may not be used here.",
                &root,
            ),
            unsuitable(expr, "value must be known"),
        ]);
    }
    if !ast::function_calls(expr).is_empty() {
        return Err(vec![Diag::new(
            "Function calls not allowed",
            "Functions may not be called here.",
            &expr.span(),
        )]);
    }
    let empty = BTreeMap::new();
    let no_functions = BTreeMap::new();
    let no_maps = BTreeSet::new();
    let evaluator = Evaluator {
        globals: &empty,
        user_functions: &no_functions,
        empty_maps: &no_maps,
    };
    let value = evaluator
        .eval(expr, &Scope::root(&empty))
        .map_err(|mut d| {
            d.push(unsuitable(expr, "value must be known"));
            d
        })?;
    match types::convert(&value, &Type::String) {
        Ok(Value::String(s)) => Ok(s),
        Ok(_) => Ok(String::new()),
        Err(e) => Err(vec![unsuitable(expr, &e.to_string())]),
    }
}

fn unsuitable(expr: &Expr, detail: &str) -> Diag {
    Diag::new(
        "Unsuitable value type",
        format!("Unsuitable value: {detail}"),
        &expr.start_span(),
    )
}

impl Loader<'_> {
    fn run(&mut self, bodies: &[Body]) -> Result<RawConfig, Vec<Diag>> {
        self.collect(bodies)?;

        let builtin_names: Vec<String> = self.builtins.keys().cloned().collect();
        for name in builtin_names {
            let _ = self.resolve_value(&BTreeMap::new(), &name);
        }

        let mut variables = Vec::new();
        for name in self.var_order.clone() {
            if let Err(e) = self.resolve_value(&BTreeMap::new(), &name) {
                let missing = self.vars[&name].missing_item.clone();
                return Err(e.wrap("Invalid value", Some(&missing)));
            }
            let def = &self.vars[&name];
            let constraint = self.constraints.get(&name);
            variables.push(VariableInfo {
                name: name.clone(),
                description: Some(def.description.clone()).filter(|d| !d.is_empty()),
                type_expr: constraint.map(Type::friendly_name_for_constraint),
                default: self.defaults.get(&name).cloned(),
                value: self.globals.get(&name).cloned().unwrap_or_default(),
            });
        }
        self.validate_variables()?;

        for name in self.funcs.keys().cloned().collect::<Vec<_>>() {
            if let Err(e) = self.resolve_function(&name) {
                let def = self.funcs[&name].clone();
                let subject = def
                    .params
                    .as_ref()
                    .map_or_else(|| def.label_span.clone(), |p| p.span.clone());
                return Err(e.wrap("Invalid function", Some(&subject)));
            }
        }

        self.block_types_ready = true;
        // Every block's names first (a matrix block is renamed), then the blocks.
        let mut by_name: BTreeMap<(&'static str, String), Vec<usize>> = BTreeMap::new();
        let mut renamed: Vec<(BlockKind, String, Vec<String>)> = Vec::new();
        for i in 0..self.blocks.len() {
            let names = match self.resolve_block_names(i) {
                Ok(n) => n,
                Err(e) => {
                    let label = self.blocks[i].block.label_spans[0].clone();
                    return Err(e.wrap("Invalid name", Some(&label)));
                }
            };
            let kind = self.blocks[i].kind;
            let label = self.blocks[i].block.labels[0].clone();
            for name in &names {
                by_name
                    .entry((kind_name(kind), name.clone()))
                    .or_default()
                    .push(i);
            }
            match renamed
                .iter_mut()
                .find(|(k, l, _)| *k == kind && *l == label)
            {
                Some(entry) => entry.2.extend(names),
                None => renamed.push((kind, label, names)),
            }
        }
        self.by_name = by_name;

        let mut diags = Vec::new();
        let mut blocks = Vec::new();
        // The first target of each name, which buildx merges later ones into.
        let mut owners: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for i in 0..self.blocks.len() {
            if let Err(e) = self.resolve_block(i, &Want::All) {
                match e {
                    LoadError::Diags(mut d) => {
                        diags.append(&mut d);
                        continue;
                    }
                    other => {
                        let block = &self.blocks[i].block;
                        return Err(other.wrap("Invalid block", Some(&block.label_spans[0])));
                    }
                }
            }
            if self.blocks[i].kind == BlockKind::Target {
                let names = self.states[i].names.clone().unwrap_or_default();
                for (j, name) in names.iter().enumerate() {
                    match owners.get(name) {
                        None => {
                            owners.insert(name.clone(), (i, j));
                        }
                        Some(&(oi, oj)) => {
                            let later = self.states[i].outputs[j].clone();
                            let owner = &mut self.states[oi];
                            let view = owner.merged_views[oj]
                                .get_or_insert_with(|| owner.outputs[oj].clone());
                            merge_target(view, &later);
                        }
                    }
                }
            }
            let top = &self.blocks[i];
            let state = &self.states[i];
            let names = state.names.clone().unwrap_or_default();
            for (j, output) in state.outputs.iter().enumerate() {
                blocks.push(RawBlock {
                    kind: top.kind,
                    name: names
                        .get(j)
                        .cloned()
                        .unwrap_or_else(|| top.block.labels[0].clone()),
                    attributes: output.clone(),
                    position: Some(top.block.def_span.position()),
                });
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }

        for name in self.attrs.keys().cloned().collect::<Vec<_>>() {
            if let Err(e) = self.resolve_value(&BTreeMap::new(), &name) {
                let span = self.attrs[&name].span.clone();
                return Err(e.wrap("Invalid attribute", Some(&span)));
            }
        }

        // A renamed block (matrix) leaves a group of its old name listing the new names.
        for (kind, label, names) in renamed {
            let mut unique: Vec<String> = Vec::new();
            for n in names {
                if !unique.contains(&n) {
                    unique.push(n);
                }
            }
            if unique.len() == 1 && unique[0] == label {
                continue;
            }
            let _ = kind;
            blocks.push(RawBlock {
                kind: BlockKind::Group,
                name: label,
                attributes: BTreeMap::from([(
                    "targets".to_string(),
                    Value::List(unique.into_iter().map(Value::String).collect()),
                )]),
                position: None,
            });
        }

        Ok(RawConfig { blocks, variables })
    }

    /// Reads the variable and function definitions, top-level attributes and blocks.
    fn collect(&mut self, bodies: &[Body]) -> Result<(), Vec<Diag>> {
        let reserved = |name: &str, builtins: &BTreeMap<String, String>| {
            name == "target" || name == "group" || builtins.contains_key(name)
        };
        let mut diags = Vec::new();
        for body in bodies {
            for block in &body.blocks {
                match block.kind.as_str() {
                    "variable" => {
                        if !check_labels(block, &mut diags) {
                            continue;
                        }
                        let def = self.variable_def(block, &mut diags);
                        let name = &block.labels[0];
                        if reserved(name, &self.builtins) {
                            continue;
                        }
                        if !self.vars.contains_key(name) {
                            self.var_order.push(name.clone());
                        }
                        self.vars.insert(name.clone(), Rc::new(def));
                    }
                    "function" => {
                        if !check_labels(block, &mut diags) {
                            continue;
                        }
                        check_strict_body(
                            &block.body,
                            &["params", "variadic_params", "result"],
                            &[],
                            &mut diags,
                        );
                        let get = |n: &str| block.body.attribute(n).cloned();
                        let def = FunctionDef {
                            params: get("params"),
                            variadic: get("variadic_params"),
                            result: get("result"),
                            label_span: block.label_spans[0].clone(),
                        };
                        let name = &block.labels[0];
                        if reserved(name, &self.builtins) {
                            continue;
                        }
                        self.funcs.insert(name.clone(), Rc::new(def));
                    }
                    _ => {}
                }
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        for body in bodies {
            for block in &body.blocks {
                let kind = match block.kind.as_str() {
                    "target" => BlockKind::Target,
                    "group" => BlockKind::Group,
                    _ => continue,
                };
                if !check_labels(block, &mut diags) {
                    continue;
                }
                self.blocks.push(TopBlock {
                    kind,
                    block: Rc::new(block.clone()),
                });
                self.states.push(BlockState::default());
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        for body in bodies {
            for attr in &body.attributes {
                if reserved(&attr.name, &self.builtins) || attr.name == "function" {
                    continue;
                }
                self.attrs.insert(attr.name.clone(), Rc::new(attr.clone()));
            }
        }
        Ok(())
    }

    fn variable_def(&self, block: &Block, diags: &mut Vec<Diag>) -> VariableDef {
        let body = &block.body;
        let mut validations = Vec::new();
        for v in body.blocks.iter().filter(|b| b.kind == "validation") {
            if let Some(label) = v.label_spans.first() {
                diags.push(Diag::new(
                    "Extraneous label for validation",
                    "No labels are expected for validation blocks.",
                    label,
                ));
                continue;
            }
            check_strict_body(&v.body, &["condition", "error_message"], &[], diags);
            validations.push(Validation {
                condition: v.body.attribute("condition").map(|a| a.expr.clone()),
                error_message: v.body.attribute("error_message").map(|a| a.expr.clone()),
                missing_item: v.body.missing_item.clone(),
            });
        }
        let description = match body.attribute("description") {
            Some(a) => match static_string(&a.expr) {
                Ok(s) => s,
                Err(mut d) => {
                    diags.append(&mut d);
                    String::new()
                }
            },
            None => String::new(),
        };
        VariableDef {
            type_expr: body.attribute("type").map(|a| a.expr.clone()),
            default: body.attribute("default").cloned(),
            description,
            validations,
            missing_item: body.missing_item.clone(),
        }
    }

    fn eval(&self, expr: &Expr, locals: &BTreeMap<String, Value>) -> Result<Value, Vec<Diag>> {
        let evaluator = Evaluator {
            globals: &self.globals,
            user_functions: &self.user_functions,
            empty_maps: &self.unpublished,
        };
        let root = Scope::root(&self.globals);
        if locals.is_empty() {
            evaluator.eval(expr, &root)
        } else {
            let child = root.child(locals.clone());
            evaluator.eval(expr, &child)
        }
    }

    /// buildx's `loadDeps`: resolves the functions, variables and block attributes `expr`
    /// refers to, so it can be evaluated.
    fn load_deps(
        &mut self,
        locals: &BTreeMap<String, Value>,
        expr: &Expr,
        exclude: &BTreeSet<String>,
        allow_missing: bool,
    ) -> Result<(), LoadError> {
        let span = expr.span();
        for name in ast::function_calls(expr) {
            if let Err(e) = self.resolve_function(&name) {
                if allow_missing && e.is_undefined() {
                    continue;
                }
                return Err(LoadError::Diags(e.wrap("Invalid expression", Some(&span))));
            }
        }
        for traversal in ast::variables(expr) {
            if exclude.contains(&traversal.root) {
                continue;
            }
            let block_kind = match traversal.root.as_str() {
                "target" if self.block_types_ready => Some("target"),
                "group" if self.block_types_ready => Some("group"),
                _ => None,
            };
            let Some(kind) = block_kind else {
                if let Err(e) = self.resolve_value(locals, &traversal.root) {
                    if allow_missing && e.is_undefined() {
                        continue;
                    }
                    return Err(LoadError::Diags(e.wrap("Invalid expression", Some(&span))));
                }
                continue;
            };
            let name = match traversal.steps.first() {
                None => {
                    return Err(LoadError::Diags(vec![Diag::new(
                        "Invalid expression",
                        format!("cannot access {kind} as a variable"),
                        &span,
                    )]));
                }
                Some(TraversalStep::Attr(name)) => name.clone(),
                Some(_) => {
                    return Err(LoadError::Diags(vec![Diag::new(
                        "Invalid expression",
                        format!("cannot traverse {kind} without attribute"),
                        &span,
                    )]));
                }
            };
            let want = match traversal.steps.get(1) {
                Some(TraversalStep::Attr(attr)) => Want::Attr(attr.clone()),
                _ => Want::All,
            };
            let indices = self.by_name.get(&(kind, name)).cloned().unwrap_or_default();
            for i in indices {
                if let Err(e) = self.resolve_block(i, &want) {
                    if allow_missing && e.is_undefined() {
                        continue;
                    }
                    return Err(LoadError::Diags(e.wrap("Invalid expression", Some(&span))));
                }
            }
        }
        Ok(())
    }

    /// buildx's `resolveFunction`.
    fn resolve_function(&mut self, name: &str) -> Result<(), LoadError> {
        if crate::hcl::functions::is_function(name)
            || matches!(name, "try" | "can" | "convert")
            || self.user_functions.contains_key(name)
        {
            return Ok(());
        }
        let Some(def) = self.funcs.get(name).cloned() else {
            return Err(LoadError::undefined(format!(
                "function {} does not exist",
                types::go_quote(name)
            )));
        };
        if !self.progress_f.insert(name.to_string()) {
            return Err(LoadError::message(format!(
                "function cycle not allowed for {name}"
            )));
        }
        let Some(result) = &def.result else {
            return Err(LoadError::message(format!(
                "empty result not allowed for {name}"
            )));
        };
        let Some(params_attr) = &def.params else {
            return Err(LoadError::message(format!(
                "empty params not allowed for {name}"
            )));
        };
        let Some(param_exprs) = params_attr.expr.as_list() else {
            return Err(LoadError::Diags(vec![Diag::new(
                "Invalid expression",
                "A static list expression is required.",
                &params_attr.expr.span(),
            )]));
        };
        let mut diags = Vec::new();
        let mut params = Vec::new();
        for p in param_exprs {
            match p.as_keyword() {
                Some(k) => params.push(k.to_string()),
                None => diags.push(Diag::new(
                    "Invalid param element",
                    "Each parameter name must be an identifier.",
                    &p.span(),
                )),
            }
        }
        let mut variadic = None;
        if let Some(v) = &def.variadic {
            match v.expr.as_keyword() {
                Some(k) => variadic = Some(k.to_string()),
                None => diags.push(Diag::new(
                    "Invalid param element",
                    "Each parameter name must be an identifier.",
                    &v.span,
                )),
            }
        }
        if !diags.is_empty() {
            return Err(LoadError::Diags(diags));
        }
        let mut exclude: BTreeSet<String> = params.iter().cloned().collect();
        exclude.extend(variadic.clone());
        self.load_deps(&BTreeMap::new(), &result.expr, &exclude, false)?;
        self.user_functions.insert(
            name.to_string(),
            UserFunction {
                params,
                variadic,
                result: result.expr.clone(),
            },
        );
        Ok(())
    }

    /// buildx's `resolveValue`: a variable, top-level attribute or built-in variable.
    fn resolve_value(
        &mut self,
        locals: &BTreeMap<String, Value>,
        name: &str,
    ) -> Result<(), LoadError> {
        if self.globals.contains_key(name) || locals.contains_key(name) {
            return Ok(());
        }
        if !self.progress_v.insert(name.to_string()) {
            return Err(LoadError::message(format!(
                "variable cycle not allowed for {name}"
            )));
        }
        if let Some(v) = self.builtins.get(name) {
            self.globals
                .insert(name.to_string(), Value::String(v.clone()));
            return Ok(());
        }

        let mut var_type = Type::Any;
        let mut type_specified = false;
        // A top-level attribute is evaluated where it is referenced; a variable's default
        // globally.
        let (default, locals) = match self.attrs.get(name) {
            Some(attr) => (Some(attr.expr.clone()), locals.clone()),
            None => {
                let Some(def) = self.vars.get(name).cloned() else {
                    return Err(LoadError::undefined(format!(
                        "variable {} does not exist",
                        types::go_quote(name)
                    )));
                };
                if let Some(type_expr) = &def.type_expr {
                    var_type = match typeexpr::type_constraint(type_expr) {
                        Ok(t) => t,
                        // An explicit null type is no type.
                        Err(_)
                            if matches!(
                                type_expr,
                                Expr::Literal {
                                    value: Value::Null,
                                    ..
                                }
                            ) =>
                        {
                            Type::Any
                        }
                        Err(d) => return Err(LoadError::Diags(d)),
                    };
                    type_specified = var_type != Type::Any || type_expr.as_keyword() == Some("any");
                    if type_specified {
                        self.constraints.insert(name.to_string(), var_type.clone());
                    }
                }
                (
                    def.default.as_ref().map(|a| a.expr.clone()),
                    BTreeMap::new(),
                )
            }
        };

        if default.is_none() {
            // An untyped variable without a value is an empty string; a typed one null.
            let (_, has_override, _) = self.value_has_override(name, false);
            if !has_override && !type_specified {
                self.globals
                    .insert(name.to_string(), Value::String(String::new()));
                return Ok(());
            }
        }

        let mut value = Value::Null;
        let mut default_is_null = true;
        if let Some(expr) = &default {
            self.load_deps(&locals, expr, &BTreeSet::new(), true)?;
            let v = self.eval(expr, &locals)?;
            default_is_null = v.is_null();
            value = types::convert(&v, &var_type).map_err(|e| {
                LoadError::message(format!(
                    "invalid type {} for variable {name} default value: {e}",
                    var_type.friendly_name()
                ))
            })?;
            if self.vars.contains_key(name) && !self.attrs.contains_key(name) {
                self.defaults.insert(name.to_string(), value.clone());
            }
        }

        let (text, has_env, json_env) = self.value_has_override(name, type_specified);
        let is_var = self.vars.contains_key(name);
        if has_env && is_var {
            value = if type_specified && json_env {
                variables::value_from_json(&text, &var_type).map_err(|e| {
                    LoadError::message(format!("failed to convert variable {name} from JSON: {e}"))
                })?
            } else if variables::supported_csv_type(&var_type) {
                variables::value_from_csv(name, &text, &var_type).map_err(|e| {
                    LoadError::message(format!("failed to convert variable {name} from CSV: {e}"))
                })?
            } else if type_specified && var_type.is_primitive() {
                variables::convert_primitive(name, &text, &var_type).map_err(LoadError::message)?
            } else if type_specified {
                return Err(LoadError::message(format!(
                    "unsupported type {} for variable {name}",
                    var_type.friendly_name()
                )));
            } else if default.is_none() || default_is_null {
                Value::String(text)
            } else {
                let default_type = Type::of(&value);
                if default_type.is_primitive() {
                    variables::convert_primitive(name, &text, &default_type)
                        .map_err(LoadError::message)?
                } else {
                    return Err(LoadError::message(format!(
                        "unsupported type {} for variable {name}",
                        default_type.friendly_name()
                    )));
                }
            };
        }
        self.globals.insert(name.to_string(), value);
        Ok(())
    }

    /// buildx's `valueHasOverride`: the environment value overriding `name`, whether there
    /// is one, and whether it is a `NAME_JSON` one.
    fn value_has_override(&self, name: &str, favor_json: bool) -> (String, bool, bool) {
        let env = &self.opts.env;
        let mut text = env.get(name).cloned().unwrap_or_default();
        let mut has = env.contains_key(name);
        let mut json = false;
        if !has || favor_json {
            let json_name = format!("{name}_JSON");
            if !self.vars.contains_key(&json_name)
                && !self.builtins.contains_key(&json_name)
                && let Some(j) = env.get(&json_name)
            {
                text = j.clone();
                has = true;
                json = true;
            }
        }
        (text, has, json)
    }

    /// buildx's `validateVariables`.
    fn validate_variables(&self) -> Result<(), Vec<Diag>> {
        let mut diags = Vec::new();
        let none = BTreeMap::new();
        for name in &self.var_order {
            let def = &self.vars[name];
            for rule in &def.validations {
                let (result, cond_span) = match &rule.condition {
                    Some(c) => (self.eval(c, &none), c.span()),
                    None => (Ok(Value::Null), rule.missing_item.clone()),
                };
                let result = match result {
                    Ok(v) => v,
                    Err(mut d) => {
                        diags.append(&mut d);
                        continue;
                    }
                };
                if result.is_null() {
                    diags.push(Diag::new(
                        "Invalid condition result",
                        "Condition expression must return either true or false, not null.",
                        &cond_span,
                    ));
                    continue;
                }
                let ok = match types::convert(&result, &Type::Bool) {
                    Ok(Value::Bool(b)) => b,
                    Ok(_) => false,
                    Err(e) => {
                        diags.push(Diag::new(
                            "Invalid condition result",
                            format!("Invalid condition result value: {e}"),
                            &cond_span,
                        ));
                        continue;
                    }
                };
                if ok {
                    continue;
                }
                let message = match &rule.error_message {
                    Some(m) => match self.eval(m, &none) {
                        Ok(v) => v,
                        Err(mut d) => {
                            diags.append(&mut d);
                            continue;
                        }
                    },
                    None => Value::Null,
                };
                let text = match &message {
                    Value::Null => {
                        "This check failed, but has an invalid error message.".to_string()
                    }
                    other => crate::hcl::eval::to_string(other).unwrap_or_default(),
                };
                diags.push(Diag::new("Validation failed", text, &cond_span));
            }
        }
        if diags.is_empty() { Ok(()) } else { Err(diags) }
    }

    /// buildx's `GetEvalContexts`: one scope per matrix combination.
    fn eval_contexts(&mut self, i: usize) -> Result<Vec<BTreeMap<String, Value>>, LoadError> {
        let kind = self.blocks[i].kind;
        let block = self.blocks[i].block.clone();
        let Some(matrix) = block.body.attribute("matrix") else {
            return Ok(vec![BTreeMap::new()]);
        };
        if kind == BlockKind::Group {
            return Err(LoadError::message("matrix is not supported for groups"));
        }
        self.load_deps(&BTreeMap::new(), &matrix.expr, &BTreeSet::new(), true)?;
        let value = self.eval(&matrix.expr, &BTreeMap::new())?;
        let Value::Object(map) = value else {
            return Err(LoadError::message("matrix must be a map"));
        };
        let mut contexts = vec![BTreeMap::new()];
        for (key, values) in map {
            let values = match values {
                Value::List(v) | Value::Set(v) => v,
                Value::Object(m) => m.into_values().collect(),
                _ => return Err(LoadError::message("matrix values must be a list")),
            };
            let mut next = Vec::new();
            for v in values {
                for existing in &contexts {
                    let mut ctx = existing.clone();
                    ctx.insert(key.clone(), v.clone());
                    next.push(ctx);
                }
            }
            contexts = next;
        }
        Ok(contexts)
    }

    /// buildx's `resolveBlockNames`.
    fn resolve_block_names(&mut self, i: usize) -> Result<Vec<String>, LoadError> {
        if let Some(names) = &self.states[i].names {
            return Ok(names.clone());
        }
        self.resolve_block(i, &Want::Nothing)?;
        let kind = self.blocks[i].kind;
        let block = self.blocks[i].block.clone();
        let mut names = Vec::new();
        for j in 0..self.states[i].contexts.len() {
            let locals = self.states[i].contexts[j].clone();
            let label = block.labels[0].clone();
            validate_target_name(&label)?;
            let name_attr = block.body.attribute("name");
            let name = match kind {
                BlockKind::Group => {
                    if name_attr.is_some() {
                        return Err(LoadError::message("name is not supported for groups"));
                    }
                    if block.body.attribute("matrix").is_some() {
                        return Err(LoadError::message("matrix is not supported for groups"));
                    }
                    label
                }
                BlockKind::Target => match name_attr {
                    None => label,
                    Some(attr) => {
                        if block.body.attribute("matrix").is_none() {
                            return Err(LoadError::message("name requires matrix"));
                        }
                        self.load_deps(&locals, &attr.expr, &BTreeSet::new(), true)?;
                        let value = self.eval(&attr.expr, &locals)?;
                        let name = match types::convert(&value, &Type::String) {
                            Ok(Value::String(s)) => s,
                            Ok(_) => String::new(),
                            Err(e) => return Err(LoadError::message(e.to_string())),
                        };
                        validate_target_name(&name)?;
                        name
                    }
                },
            };
            names.push(name);
        }
        let mut seen = BTreeSet::new();
        for name in &names {
            if !seen.insert(name.clone()) {
                return Err(LoadError::message(format!(
                    "duplicate name {}",
                    types::go_quote(name)
                )));
            }
        }
        self.states[i].names = Some(names.clone());
        Ok(names)
    }

    /// buildx's `resolveBlock`: evaluates `want` of block `i` in each of its combinations
    /// and publishes the result as `target.NAME` / `group.NAME`.
    fn resolve_block(&mut self, i: usize, want: &Want) -> Result<(), LoadError> {
        let kind = self.blocks[i].kind;
        let kind_str = kind_name(kind);
        if !self.globals.contains_key(kind_str) {
            self.globals
                .insert(kind_str.to_string(), Value::Object(BTreeMap::new()));
            self.unpublished.insert(kind_str.to_string());
        }
        let block = self.blocks[i].block.clone();
        if self.states[i].contexts.is_empty() && self.states[i].outputs.is_empty() {
            let contexts = self.eval_contexts(i)?;
            let n = contexts.len();
            let state = &mut self.states[i];
            state.contexts = contexts;
            state.outputs = vec![BTreeMap::new(); n];
            state.done = vec![BTreeSet::new(); n];
            state.progress = vec![BTreeSet::new(); n];
            state.merged_views = vec![None; n];
            if n == 0 {
                // A matrix with an empty list: no combination at all.
                state.names.get_or_insert_with(Vec::new);
            }
        }
        let schema = fields(kind);
        for j in 0..self.states[i].contexts.len() {
            let name = self.states[i]
                .names
                .as_ref()
                .and_then(|n| n.get(j).cloned())
                .unwrap_or_else(|| block.labels[0].clone());
            let locals = self.states[i].contexts[j].clone();
            match want {
                Want::Nothing => return Ok(()),
                Want::Attr(a) => {
                    if self.states[i].done[j].contains(a) {
                        return Ok(());
                    }
                    if !self.states[i].progress[j].insert(a.clone()) {
                        return Err(LoadError::message(format!(
                            "reference cycle not allowed for {kind_str}.{name}.{a}"
                        )));
                    }
                }
                Want::All => {}
            }
            let selected = |done: &BTreeSet<String>| -> Vec<Attribute> {
                block
                    .body
                    .attributes
                    .iter()
                    .filter(|attr| schema.iter().any(|(f, _)| *f == attr.name))
                    .filter(|attr| match want {
                        Want::Attr(a) => attr.name == *a,
                        _ => !done.contains(&attr.name),
                    })
                    .cloned()
                    .collect()
            };
            let planned = selected(&self.states[i].done[j]);
            // buildx loads the attributes' dependencies in its schema's (name) order, which
            // decides what a repeated target looks like to references.
            let mut by_name: Vec<&Attribute> = planned.iter().collect();
            by_name.sort_by(|a, b| a.name.cmp(&b.name));
            for attr in by_name {
                self.load_deps(&locals, &attr.expr, &BTreeSet::new(), true)?;
            }
            // References met while loading may have evaluated some attributes already.
            let to_decode = match want {
                Want::Attr(_) => planned.clone(),
                _ => selected(&self.states[i].done[j]),
            };
            let mut diags = Vec::new();
            let mut decoded = Vec::new();
            for attr in &to_decode {
                let field = schema
                    .iter()
                    .find(|(f, _)| *f == attr.name)
                    .map_or(Field::String, |(_, t)| *t);
                match self.eval(&attr.expr, &locals) {
                    // gohcl then fails to store the unknown result, a second diagnostic.
                    Err(mut d) => {
                        diags.append(&mut d);
                        diags.push(unsuitable(&attr.expr, "value must be known"));
                    }
                    Ok(value) => match self.decode_field(&attr.name, field, &value) {
                        Ok(converted) => decoded.push((attr.name.clone(), converted)),
                        Err(detail) => diags.push(unsuitable(&attr.expr, &detail)),
                    },
                }
            }
            // A group's `targets` is required.
            let wants_targets = match want {
                Want::All => !self.states[i].done[j].contains("targets"),
                Want::Attr(a) => a == "targets",
                Want::Nothing => false,
            };
            if kind == BlockKind::Group
                && wants_targets
                && block.body.attribute("targets").is_none()
            {
                diags.push(Diag::new(
                    "Missing required argument",
                    "The argument \"targets\" is required, but no definition was found.",
                    &block.body.missing_item,
                ));
            }
            if !diags.is_empty() {
                return Err(LoadError::Diags(diags));
            }
            let state = &mut self.states[i];
            for (attr_name, value) in decoded {
                state.outputs[j].insert(attr_name.clone(), value);
                state.done[j].insert(attr_name);
            }
            for attr in &planned {
                state.done[j].insert(attr.name.clone());
            }
            if let Want::Attr(a) = want {
                state.done[j].insert(a.clone());
            }
            let view = self.states[i].merged_views[j]
                .as_ref()
                .unwrap_or(&self.states[i].outputs[j]);
            let published = self.reference_value(kind, &name, view);
            if let Some(Value::Object(map)) = self.globals.get_mut(kind_str) {
                map.insert(name.clone(), published);
            }
            self.unpublished.remove(kind_str);
        }
        Ok(())
    }

    /// An attribute's value converted to its field's type (gohcl's decoding into buildx's
    /// structs); the error text follows "Unsuitable value: ".
    fn decode_field(&self, name: &str, field: Field, value: &Value) -> Result<Value, String> {
        let ty = match field {
            Field::String => Type::String,
            Field::Bool => Type::Bool,
            Field::ListOfString => Type::List(Box::new(Type::String)),
            Field::MapOfString | Field::MapOfOptionalString => Type::Map(Box::new(Type::String)),
            Field::Structured => return structured_shape(name, value),
        };
        let converted = types::convert(value, &ty).map_err(|e| e.to_string())?;
        // `description` is a plain Go string: null cannot be stored in it.
        if name == "description" && converted.is_null() {
            return Err("null value is not allowed".to_string());
        }
        if field == Field::MapOfString
            && let Value::Object(map) = &converted
            && map.values().any(Value::is_null)
        {
            return Err("null value is not allowed".to_string());
        }
        if matches!(field, Field::ListOfString)
            && let Value::List(items) = &converted
            && items.iter().any(Value::is_null)
        {
            return Err("null value is not allowed".to_string());
        }
        Ok(converted)
    }

    /// The value another block sees as `target.NAME` (buildx's cty value of its struct):
    /// every field, unset ones null (a description empty, the buildflags lists empty).
    fn reference_value(
        &self,
        kind: BlockKind,
        name: &str,
        output: &BTreeMap<String, Value>,
    ) -> Value {
        let mut map = BTreeMap::new();
        for (field, ty) in fields(kind) {
            let value = match output.get(*field) {
                Some(v) if *ty == Field::Structured && !v.is_null() => {
                    match self.opts.structured_attribute {
                        Some(normalize) => normalize(field, v).unwrap_or_else(|_| v.clone()),
                        None => v.clone(),
                    }
                }
                Some(Value::Null) | None => match ty {
                    Field::Structured => Value::List(Vec::new()),
                    _ if *field == "description" => Value::String(String::new()),
                    _ => Value::Null,
                },
                Some(v) => v.clone(),
            };
            map.insert(field.to_string(), value);
        }
        map.insert("name".to_string(), Value::String(name.to_string()));
        Value::Object(map)
    }
}

/// The element type of a structured attribute (buildflags' cty types): `secret` and `ssh`
/// entries are objects, the others maps of strings.
fn structured_element_type(name: &str) -> Type {
    let object = |attrs: &[(&str, Type)]| Type::Object {
        attributes: attrs
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect(),
        optional: attrs.iter().map(|(k, _)| k.to_string()).collect(),
    };
    match name {
        "secret" => object(&[
            ("id", Type::String),
            ("src", Type::String),
            ("env", Type::String),
        ]),
        "ssh" => object(&[
            ("id", Type::String),
            ("paths", Type::List(Box::new(Type::String))),
        ]),
        _ => Type::Map(Box::new(Type::String)),
    }
}

/// The shape checks buildx's buildflags types make when decoding (`output`, `cache-from`,
/// `secret`, …): a list whose elements are strings (parsed by the model) or values of the
/// entry type.
fn structured_shape(name: &str, value: &Value) -> Result<Value, String> {
    let element_type = structured_element_type(name);
    let items = match value {
        Value::Null => return Ok(Value::Null),
        Value::List(items) | Value::Set(items) => items,
        other => {
            return Err(types::mismatch_message(
                &Type::of(other),
                &Type::List(Box::new(element_type)),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(_) => out.push(item.clone()),
            other => out.push(types::convert(other, &element_type).map_err(|e| e.to_string())?),
        }
    }
    Ok(Value::List(out))
}

/// buildx's `Target.Merge` over decoded attributes: what a target that is defined again
/// looks like to references made after the main pass merged it.
fn merge_target(into: &mut BTreeMap<String, Value>, later: &BTreeMap<String, Value>) {
    for (name, value) in later {
        if value.is_null() && name != "inherits" {
            continue;
        }
        match name.as_str() {
            // Merged by key (null entries skipped, except for contexts).
            "args" | "labels" | "extra-hosts" | "contexts" => {
                let Value::Object(new) = value else { continue };
                let entry = into
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(BTreeMap::new()));
                if entry.is_null() {
                    *entry = Value::Object(BTreeMap::new());
                }
                if let Value::Object(old) = entry {
                    for (k, v) in new {
                        if v.is_null() && name != "contexts" {
                            continue;
                        }
                        old.insert(k.clone(), v.clone());
                    }
                }
            }
            // Appended.
            "annotations" | "attest" | "secret" | "ssh" | "cache-from" | "no-cache-filter"
            | "ulimits" | "entitlements" | "inherits" => {
                let Value::List(new) = value else { continue };
                match into.get_mut(name) {
                    Some(Value::List(old)) => old.extend(new.iter().cloned()),
                    _ => {
                        into.insert(name.clone(), value.clone());
                    }
                }
            }
            "description" if matches!(value, Value::String(s) if s.is_empty()) => {}
            // Replaced.
            _ => {
                into.insert(name.clone(), value.clone());
            }
        }
    }
}

/// buildx's `validateTargetName`.
fn validate_target_name(name: &str) -> Result<(), LoadError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(LoadError::message("only \"[a-zA-Z0-9_-]+\" are allowed"))
    }
}
