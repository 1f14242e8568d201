//! The crate's entry points for the CLI: read the bake files into a definition (buildx's
//! `ParseFiles`: compose files told apart from HCL/JSON ones, both merged into one config),
//! resolve the requested targets (`ReadTargets`), and the `--print` / `--list` texts.

use std::path::PathBuf;

use crate::compose::{self, ComposeEnv, ComposeError};
use crate::hcl::{self, Diagnostics, EvalOptions};
use crate::lookup::LookupError;
use crate::model::Config;
use crate::model::decode::{self, DecodeError};
use crate::print::{ListKind, ListRequest};
use crate::raw::VariableInfo;
use crate::resolve::{self, ResolveError, Resolved};

/// Why a bake definition could not be read or resolved, worded as buildx words it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BakeError {
    /// The HCL/JSON files do not evaluate (HCL diagnostics, with a source snippet).
    #[error(transparent)]
    Hcl(#[from] Box<Diagnostics>),
    /// An evaluated block does not decode into a target or group.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A `.yml`/`.yaml` (or extension-less compose) file that does not load on its own.
    #[error(transparent)]
    ComposeFile(ComposeError),
    /// The compose files do not load together.
    #[error("failed to parse compose file: {0}")]
    Compose(ComposeError),
    /// A file of unknown extension that is neither compose nor HCL/JSON.
    #[error("failed to parse {file}: parsing yaml: {yaml}, parsing hcl: {hcl}")]
    Unrecognized {
        /// The file's name.
        file: String,
        /// Why it is no compose file.
        yaml: ComposeError,
        /// Why it is no HCL file.
        hcl: Box<Diagnostics>,
    },
    /// Resolving the targets failed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The files could not be found or read.
    #[error(transparent)]
    Lookup(#[from] LookupError),
}

/// What reading a definition needs from its surroundings.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The HCL evaluation's options (environment, built-in variables).
    pub eval: EvalOptions,
    /// The compose files' environment (the process environment and `.env`) and folder.
    pub compose_env: ComposeEnv,
}

impl ReadOptions {
    /// Options for the given evaluation options, compose files reading `eval.env` and the
    /// `.env` of the current directory, as buildx does.
    pub fn from_eval(eval: EvalOptions) -> Result<Self, BakeError> {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let compose_env =
            ComposeEnv::with_dot_env(eval.env.clone(), dir).map_err(BakeError::Compose)?;
        Ok(ReadOptions { eval, compose_env })
    }
}

/// A parsed definition: the merged config and, when HCL/JSON files were read, their
/// variables (for `--list variables`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Definition {
    /// The groups and targets, before resolution.
    pub config: Config,
    /// The variables of the HCL/JSON files; `None` when only compose files were read.
    pub variables: Option<Vec<VariableInfo>>,
}

/// Reads the files into one config as buildx's `ParseFiles` does: compose files first (all
/// together), then the HCL/JSON files evaluated together, their targets merged into the
/// compose ones of the same name and their groups replacing them.
pub fn parse_files(files: &[crate::File], opts: &ReadOptions) -> Result<Definition, BakeError> {
    let mut compose_files = Vec::new();
    let mut hcl_files = Vec::new();
    let mut not_compose: Vec<(String, ComposeError)> = Vec::new();
    for file in files {
        match compose::detect(file, &opts.compose_env) {
            (true, Some(err)) => return Err(BakeError::ComposeFile(err)),
            (true, None) => compose_files.push(file.clone()),
            (false, err) => {
                if let Some(err) = err {
                    not_compose.push((file.name.clone(), err));
                }
                hcl_files.push(file.clone());
            }
        }
    }

    let mut definition = Definition::default();
    if !compose_files.is_empty() {
        let mut config = compose::parse_compose_files(&compose_files, &opts.compose_env)
            .map_err(BakeError::Compose)?;
        config.dedupe();
        definition.config = config;
    }
    if !hcl_files.is_empty() {
        let mut eval = opts.eval.clone();
        if eval.structured_attribute.is_none() {
            eval.structured_attribute = Some(decode::structured_attribute_value);
        }
        let raw = hcl::parse_files(&hcl_files, &eval).map_err(|diags| {
            // A file of unknown extension that failed as compose and fails as HCL is
            // reported as neither, as buildx does.
            let failing = diags
                .diagnostics
                .iter()
                .find_map(|d| d.subject.as_ref())
                .map(|s| s.file.clone());
            match not_compose
                .iter()
                .find(|(name, _)| failing.as_deref() == Some(format!("{name}.hcl").as_str()))
            {
                Some((name, yaml)) => BakeError::Unrecognized {
                    file: name.clone(),
                    yaml: yaml.clone(),
                    hcl: Box::new(diags.clone()),
                },
                None => BakeError::Hcl(Box::new(diags)),
            }
        })?;
        for block in &raw.blocks {
            decode::add_block(&mut definition.config, block)?;
        }
        definition.config.dedupe();
        definition.variables = Some(raw.variables);
    }
    Ok(definition)
}

/// Resolves the requested targets of a parsed definition (`default` when none is asked
/// for), applying the `--set` overrides (the CLI's shorthand flags already turned into
/// `--set` values by [`crate::overrides::FlagOverrides`]).
pub fn resolve_targets(
    definition: &Definition,
    targets: &[String],
    overrides: &[String],
    opts: &ReadOptions,
) -> Result<Resolved, BakeError> {
    let default = ["default".to_string()];
    let targets = if targets.is_empty() {
        &default[..]
    } else {
        targets
    };
    let env = &opts.eval.env;
    Ok(resolve::read_targets(
        &definition.config,
        targets,
        overrides,
        &|k| env.get(k).cloned(),
    )?)
}

/// Reads the files and resolves the requested targets (buildx's `ReadTargets`).
pub fn read_targets(
    files: &[crate::File],
    targets: &[String],
    overrides: &[String],
    opts: &ReadOptions,
) -> Result<Resolved, BakeError> {
    if files.is_empty() {
        return Err(LookupError::NoDefinition.into());
    }
    let definition = parse_files(files, opts)?;
    resolve_targets(&definition, targets, overrides, opts)
}

/// The `--print` output for resolved targets, as buildx prints it after converting them to
/// build options (`prepare_for_build` applied to a copy: cleaned contexts, stdout outputs,
/// `SOURCE_DATE_EPOCH` from the evaluation environment; the options checked as buildx's
/// conversion checks them, see [`resolve::check_build_options`]).
pub fn print(resolved: &Resolved, opts: &ReadOptions) -> Result<String, BakeError> {
    let mut shown = resolved.clone();
    let epoch = opts.eval.env.get("SOURCE_DATE_EPOCH").map(String::as_str);
    resolve::prepare_for_build(&mut shown, epoch)?;
    let env = &opts.eval.env;
    resolve::check_build_options(
        &shown,
        &|k| env.get(k).cloned(),
        &opts.compose_env.working_dir,
    )?;
    Ok(crate::print::print_definition(
        &shown.groups,
        &shown.targets,
    ))
}

/// The `--list` output for a parsed definition.
pub fn list(definition: &Definition, request: ListRequest) -> String {
    match request.kind {
        ListKind::Targets => crate::print::list_targets(&definition.config, request.format),
        ListKind::Variables => match &definition.variables {
            Some(variables) => crate::print::list_variables(variables, request.format),
            None => crate::print::list_no_variables(request.format),
        },
    }
}
