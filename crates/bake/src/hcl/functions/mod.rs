//! Every function a bake file can call: cty's standard library as buildx registers it,
//! go-cty-funcs' additions, and buildx's own.
//!
//! A call goes the way HCL makes it: the number of arguments is checked against the
//! function's parameters, each argument is converted to its parameter's type (cty's
//! unsafe conversion: `upper(1)` is `"1"`), nulls are refused where the parameter does not
//! allow them, and then the function runs. Each step fails with the error HCL reports for
//! it ([`FunctionError`]). `try`, `can` and `convert` are not here: they need their
//! arguments unevaluated, so the evaluator does them.

mod cidr;
mod collections;
mod crypto;
mod datetime;
mod encoding;
mod format;
mod general;
pub(crate) mod gofmt;
mod json;
mod numbers;
mod regex;
mod sets;
mod strings;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::types::{Type, convert};
use crate::value::Value;

/// Why a function call failed, in the classes HCL reports differently.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunctionError {
    /// Fewer arguments than the function's fixed parameters.
    #[error("Not enough function arguments; {}", self.detail())]
    NotEnoughArguments {
        /// The function called.
        function: String,
        /// How many fixed parameters it has.
        expected: usize,
        /// Whether it also takes variadic arguments (`expects at least`).
        variadic: bool,
        /// The first parameter without an argument.
        missing: String,
    },
    /// More arguments than a function without variadic parameters takes.
    #[error("Too many function arguments; {}", self.detail())]
    TooManyArguments {
        /// The function called.
        function: String,
        /// How many parameters it has.
        expected: usize,
    },
    /// One argument is unacceptable: it does not convert to its parameter's type, is null
    /// where that is not allowed, or the function rejected it (cty's `NewArgError`).
    #[error("Invalid function argument; {}", self.detail())]
    InvalidArgument {
        /// The function called.
        function: String,
        /// The argument's position (0-based).
        index: usize,
        /// The parameter's name.
        parameter: String,
        /// What is wrong, as cty words it.
        message: String,
    },
    /// The function failed for another reason.
    #[error("Error in function call; {}", self.detail())]
    CallFailed {
        /// The function called.
        function: String,
        /// What went wrong, as the function words it.
        message: String,
    },
}

impl FunctionError {
    /// The diagnostic's summary as HCL words it (`Invalid function argument`, …).
    pub fn summary(&self) -> &'static str {
        match self {
            FunctionError::NotEnoughArguments { .. } => "Not enough function arguments",
            FunctionError::TooManyArguments { .. } => "Too many function arguments",
            FunctionError::InvalidArgument { .. } => "Invalid function argument",
            FunctionError::CallFailed { .. } => "Error in function call",
        }
    }

    /// The diagnostic's detail as HCL words it
    /// (`Invalid value for "str" parameter: string required.`).
    pub fn detail(&self) -> String {
        match self {
            FunctionError::NotEnoughArguments {
                function,
                expected,
                variadic,
                missing,
            } => {
                let qualifier = if *variadic { " at least" } else { "" };
                format!(
                    "Function {function:?} expects{qualifier} {expected} argument(s). Missing value for {missing:?}."
                )
            }
            FunctionError::TooManyArguments { function, expected } => {
                format!("Function {function:?} expects only {expected} argument(s).")
            }
            FunctionError::InvalidArgument {
                parameter, message, ..
            } => {
                format!("Invalid value for {parameter:?} parameter: {message}.")
            }
            FunctionError::CallFailed { function, message } => {
                format!("Call to function {function:?} failed: {message}.")
            }
        }
    }

    /// The diagnostic's summary and detail, for the evaluator to print.
    pub fn summary_and_detail(&self) -> (String, String) {
        (self.summary().to_string(), self.detail())
    }
}

/// What a function implementation reports; [`call`] names the parameter and function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// cty's `function.NewArgError`: argument `index` is at fault.
    Arg(usize, String),
    /// Any other error.
    Call(String),
}

impl Failure {
    fn arg(index: usize, message: impl Into<String>) -> Self {
        Failure::Arg(index, message.into())
    }
    fn call(message: impl Into<String>) -> Self {
        Failure::Call(message.into())
    }
}

/// What a function implementation returns.
pub(crate) type Outcome = Result<Value, Failure>;

/// A function parameter: its name (in messages), its type (arguments are converted to
/// it) and whether a null argument is allowed.
struct Param {
    name: &'static str,
    ty: Type,
    allow_null: bool,
    /// cty's bytes capsule type, which no bake value converts to.
    bytes: bool,
}

/// A function: its parameters, its variadic parameter if any, and its implementation,
/// which gets the converted arguments.
struct Function {
    params: Vec<Param>,
    var_param: Option<Param>,
    implementation: fn(&[Value]) -> Outcome,
}

fn param(name: &'static str, ty: Type) -> Param {
    Param {
        name,
        ty,
        allow_null: false,
        bytes: false,
    }
}

fn nullable(name: &'static str, ty: Type) -> Param {
    Param {
        name,
        ty,
        allow_null: true,
        bytes: false,
    }
}

fn bytes_param(name: &'static str) -> Param {
    Param {
        name,
        ty: Type::Any,
        allow_null: false,
        bytes: true,
    }
}

fn list_of(ty: Type) -> Type {
    Type::List(Box::new(ty))
}

fn set_of(ty: Type) -> Type {
    Type::Set(Box::new(ty))
}

fn function(params: Vec<Param>, implementation: fn(&[Value]) -> Outcome) -> Function {
    Function {
        params,
        var_param: None,
        implementation,
    }
}

fn variadic(
    params: Vec<Param>,
    var_param: Param,
    implementation: fn(&[Value]) -> Outcome,
) -> Function {
    Function {
        params,
        var_param: Some(var_param),
        implementation,
    }
}

static REGISTRY: LazyLock<BTreeMap<&'static str, Function>> = LazyLock::new(registry);

/// Every function buildx v0.29.1 registers (bake/hclparser/stdlib.go) except `try`, `can`
/// and `convert`, with cty's parameter names and types.
fn registry() -> BTreeMap<&'static str, Function> {
    use Type::{Any, Bool, Number, String};
    let s = || param("str", String);
    let num = || param("num", Number);
    let ab_num = || vec![param("a", Number), param("b", Number)];
    let mut r: BTreeMap<&'static str, Function> = BTreeMap::new();

    // numbers
    r.insert("absolute", function(vec![num()], numbers::absolute));
    r.insert("add", function(ab_num(), numbers::add));
    r.insert("subtract", function(ab_num(), numbers::subtract));
    r.insert("multiply", function(ab_num(), numbers::multiply));
    r.insert("divide", function(ab_num(), numbers::divide));
    r.insert("modulo", function(ab_num(), numbers::modulo));
    r.insert("greaterthan", function(ab_num(), numbers::greater_than));
    r.insert(
        "greaterthanorequalto",
        function(ab_num(), numbers::greater_than_or_equal),
    );
    r.insert("lessthan", function(ab_num(), numbers::less_than));
    r.insert(
        "lessthanorequalto",
        function(ab_num(), numbers::less_than_or_equal),
    );
    r.insert("negate", function(vec![num()], numbers::negate));
    r.insert(
        "min",
        variadic(vec![], param("numbers", Number), numbers::min),
    );
    r.insert(
        "max",
        variadic(vec![], param("numbers", Number), numbers::max),
    );
    r.insert("int", function(vec![num()], numbers::int));
    r.insert("ceil", function(vec![num()], numbers::ceil));
    r.insert("floor", function(vec![num()], numbers::floor));
    r.insert(
        "log",
        function(vec![num(), param("base", Number)], numbers::log),
    );
    r.insert(
        "pow",
        function(vec![num(), param("power", Number)], numbers::pow),
    );
    r.insert("signum", function(vec![num()], numbers::signum));
    r.insert(
        "parseint",
        function(
            vec![param("number", Any), param("base", Number)],
            numbers::parse_int,
        ),
    );

    // booleans and comparison
    r.insert("not", function(vec![param("val", Bool)], general::not));
    r.insert(
        "and",
        function(vec![param("a", Bool), param("b", Bool)], general::and),
    );
    r.insert(
        "or",
        function(vec![param("a", Bool), param("b", Bool)], general::or),
    );
    r.insert(
        "equal",
        function(vec![nullable("a", Any), nullable("b", Any)], general::equal),
    );
    r.insert(
        "notequal",
        function(
            vec![nullable("a", Any), nullable("b", Any)],
            general::not_equal,
        ),
    );
    r.insert(
        "coalesce",
        variadic(vec![], nullable("vals", Any), general::coalesce),
    );
    r.insert(
        "byteslen",
        function(vec![bytes_param("buf")], general::bytes_len),
    );
    r.insert(
        "bytesslice",
        function(
            vec![
                bytes_param("buf"),
                param("offset", Number),
                param("length", Number),
            ],
            general::bytes_slice,
        ),
    );
    r.insert("homedir", function(vec![], general::homedir));

    // strings
    r.insert("upper", function(vec![s()], strings::upper));
    r.insert("lower", function(vec![s()], strings::lower));
    r.insert("reverse", function(vec![s()], strings::reverse));
    r.insert("strlen", function(vec![s()], strings::strlen));
    r.insert(
        "substr",
        function(
            vec![s(), param("offset", Number), param("length", Number)],
            strings::substr,
        ),
    );
    r.insert(
        "join",
        variadic(
            vec![param("separator", String)],
            param("lists", list_of(String)),
            strings::join,
        ),
    );
    r.insert(
        "sort",
        function(vec![param("list", list_of(String))], strings::sort),
    );
    r.insert(
        "split",
        function(vec![param("separator", String), s()], strings::split),
    );
    r.insert("chomp", function(vec![s()], strings::chomp));
    r.insert(
        "indent",
        function(vec![param("spaces", Number), s()], strings::indent),
    );
    r.insert("title", function(vec![s()], strings::title));
    r.insert("trimspace", function(vec![s()], strings::trim_space));
    r.insert(
        "trim",
        function(vec![s(), param("cutset", String)], strings::trim),
    );
    r.insert(
        "trimprefix",
        function(vec![s(), param("prefix", String)], strings::trim_prefix),
    );
    r.insert(
        "trimsuffix",
        function(vec![s(), param("suffix", String)], strings::trim_suffix),
    );
    r.insert(
        "replace",
        function(
            vec![s(), param("substr", String), param("replace", String)],
            strings::replace,
        ),
    );
    r.insert(
        "basename",
        function(vec![param("path", String)], strings::basename),
    );
    r.insert(
        "dirname",
        function(vec![param("path", String)], strings::dirname),
    );
    r.insert(
        "sanitize",
        function(vec![param("name", String)], strings::sanitize),
    );

    // regular expressions
    r.insert(
        "regex",
        function(
            vec![param("pattern", String), param("string", String)],
            regex::regex,
        ),
    );
    r.insert(
        "regexall",
        function(
            vec![param("pattern", String), param("string", String)],
            regex::regex_all,
        ),
    );
    r.insert(
        "regex_replace",
        function(
            vec![s(), param("pattern", String), param("replace", String)],
            regex::regex_replace,
        ),
    );

    // formatting
    r.insert(
        "format",
        variadic(
            vec![param("format", String)],
            nullable("args", Any),
            format::format,
        ),
    );
    r.insert(
        "formatlist",
        variadic(
            vec![param("format", String)],
            nullable("args", Any),
            format::format_list,
        ),
    );

    // collections
    r.insert(
        "hasindex",
        function(
            vec![param("collection", Any), param("key", Any)],
            collections::has_index,
        ),
    );
    r.insert(
        "index",
        function(
            vec![param("collection", Any), param("key", Any)],
            collections::index,
        ),
    );
    r.insert(
        "length",
        function(vec![param("collection", Any)], collections::length),
    );
    r.insert(
        "element",
        function(
            vec![param("list", Any), param("index", Number)],
            collections::element,
        ),
    );
    r.insert(
        "coalescelist",
        variadic(vec![], nullable("vals", Any), collections::coalesce_list),
    );
    r.insert(
        "compact",
        function(vec![param("list", list_of(String))], collections::compact),
    );
    r.insert(
        "contains",
        function(
            vec![param("list", Any), param("value", Any)],
            collections::contains,
        ),
    );
    r.insert(
        "distinct",
        function(vec![param("list", list_of(Any))], collections::distinct),
    );
    r.insert(
        "chunklist",
        function(
            vec![param("list", list_of(Any)), param("size", Number)],
            collections::chunklist,
        ),
    );
    r.insert(
        "flatten",
        function(vec![param("list", Any)], collections::flatten),
    );
    r.insert(
        "keys",
        function(vec![param("inputMap", Any)], collections::keys),
    );
    r.insert(
        "lookup",
        function(
            vec![
                param("inputMap", Any),
                param("key", String),
                param("default", Any),
            ],
            collections::lookup,
        ),
    );
    r.insert(
        "merge",
        variadic(vec![], nullable("maps", Any), collections::merge),
    );
    r.insert(
        "reverselist",
        function(vec![param("list", Any)], collections::reverse_list),
    );
    r.insert(
        "setproduct",
        variadic(vec![], param("sets", Any), sets::product),
    );
    r.insert(
        "slice",
        function(
            vec![
                param("list", Any),
                param("start_index", Number),
                param("end_index", Number),
            ],
            collections::slice,
        ),
    );
    r.insert(
        "values",
        function(vec![param("mapping", Any)], collections::values),
    );
    r.insert(
        "zipmap",
        function(
            vec![param("keys", list_of(String)), param("values", Any)],
            collections::zipmap,
        ),
    );
    r.insert(
        "concat",
        variadic(vec![], param("seqs", Any), collections::concat),
    );
    r.insert(
        "range",
        variadic(vec![], param("params", Number), collections::range),
    );
    r.insert(
        "indexof",
        function(
            vec![param("list", Any), param("value", Any)],
            collections::index_of,
        ),
    );

    // sets
    let set_any = || set_of(Any);
    r.insert(
        "sethaselement",
        function(
            vec![param("set", set_any()), param("elem", Any)],
            sets::has_element,
        ),
    );
    r.insert(
        "setunion",
        variadic(
            vec![param("first_set", set_any())],
            param("other_sets", set_any()),
            sets::union,
        ),
    );
    r.insert(
        "setintersection",
        variadic(
            vec![param("first_set", set_any())],
            param("other_sets", set_any()),
            sets::intersection,
        ),
    );
    r.insert(
        "setsubtract",
        function(
            vec![param("a", set_any()), param("b", set_any())],
            sets::subtract,
        ),
    );
    r.insert(
        "setsymmetricdifference",
        variadic(
            vec![param("first_set", set_any())],
            param("other_sets", set_any()),
            sets::symmetric_difference,
        ),
    );

    // encodings
    r.insert(
        "jsonencode",
        function(vec![nullable("val", Any)], json::json_encode),
    );
    r.insert("jsondecode", function(vec![s()], json::json_decode));
    r.insert("csvdecode", function(vec![s()], encoding::csv_decode));
    r.insert("base64encode", function(vec![s()], encoding::base64_encode));
    r.insert("base64decode", function(vec![s()], encoding::base64_decode));
    r.insert("urlencode", function(vec![s()], encoding::url_encode));

    // hashes, crypto and UUIDs
    r.insert("md5", function(vec![s()], crypto::md5));
    r.insert("sha1", function(vec![s()], crypto::sha1));
    r.insert("sha256", function(vec![s()], crypto::sha256));
    r.insert("sha512", function(vec![s()], crypto::sha512));
    r.insert(
        "bcrypt",
        variadic(vec![s()], param("cost", Number), crypto::bcrypt),
    );
    r.insert(
        "rsadecrypt",
        function(
            vec![param("ciphertext", String), param("privatekey", String)],
            crypto::rsa_decrypt,
        ),
    );
    r.insert("uuidv4", function(vec![], crypto::uuid_v4));
    r.insert(
        "uuidv5",
        function(
            vec![param("namespace", String), param("name", String)],
            crypto::uuid_v5,
        ),
    );

    // networks
    r.insert(
        "cidrhost",
        function(
            vec![param("prefix", String), param("hostnum", Number)],
            cidr::host,
        ),
    );
    r.insert(
        "cidrnetmask",
        function(vec![param("prefix", String)], cidr::netmask),
    );
    r.insert(
        "cidrsubnet",
        function(
            vec![
                param("prefix", String),
                param("newbits", Number),
                param("netnum", Number),
            ],
            cidr::subnet,
        ),
    );
    r.insert(
        "cidrsubnets",
        variadic(
            vec![param("prefix", String)],
            param("newbits", Number),
            cidr::subnets,
        ),
    );

    // time
    r.insert(
        "formatdate",
        function(
            vec![param("format", String), param("time", String)],
            datetime::format_date,
        ),
    );
    r.insert(
        "timeadd",
        function(
            vec![param("timestamp", String), param("duration", String)],
            datetime::time_add,
        ),
    );
    r.insert("timestamp", function(vec![], datetime::timestamp));

    r
}

/// Calls the function `name` with `args` (evaluated, not yet converted), as HCL calls it;
/// None when there is no such function.
pub fn call(name: &str, args: Vec<Value>) -> Option<Result<Value, FunctionError>> {
    let function = REGISTRY.get(name)?;
    Some(call_function(name, function, args))
}

/// Whether a function of this name exists.
pub fn is_function(name: &str) -> bool {
    REGISTRY.contains_key(name)
}

/// The names of all functions, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    REGISTRY.keys().copied()
}

fn call_function(
    name: &str,
    function: &Function,
    args: Vec<Value>,
) -> Result<Value, FunctionError> {
    let fixed = function.params.len();
    if args.len() < fixed {
        return Err(FunctionError::NotEnoughArguments {
            function: name.to_string(),
            expected: fixed,
            variadic: function.var_param.is_some(),
            missing: function.params[args.len()].name.to_string(),
        });
    }
    if function.var_param.is_none() && args.len() > fixed {
        return Err(FunctionError::TooManyArguments {
            function: name.to_string(),
            expected: fixed,
        });
    }
    let param_at = |index: usize| function.params.get(index).or(function.var_param.as_ref());
    let invalid = |index: usize, message: String| match param_at(index) {
        Some(param) => FunctionError::InvalidArgument {
            function: name.to_string(),
            index,
            parameter: param.name.to_string(),
            message,
        },
        None => FunctionError::CallFailed {
            function: name.to_string(),
            message,
        },
    };

    // HCL converts every argument to its parameter's type before calling.
    let mut converted = Vec::with_capacity(args.len());
    for (index, arg) in args.iter().enumerate() {
        let Some(param) = param_at(index) else { break };
        if param.bytes && !arg.is_null() {
            return Err(invalid(index, general::not_bytes(arg)));
        }
        match convert(arg, &param.ty) {
            Ok(value) => converted.push(value),
            Err(err) => return Err(invalid(index, err.message)),
        }
    }
    // cty refuses nulls where the parameter does not allow them.
    for (index, value) in converted.iter().enumerate() {
        if value.is_null() && param_at(index).is_some_and(|p| !p.allow_null) {
            return Err(invalid(index, "argument must not be null".to_string()));
        }
    }
    (function.implementation)(&converted).map_err(|failure| match failure {
        Failure::Arg(index, message) if param_at(index).is_some() => invalid(index, message),
        Failure::Arg(_, message) | Failure::Call(message) => FunctionError::CallFailed {
            function: name.to_string(),
            message,
        },
    })
}

/// Argument helpers shared by the implementations: arguments arrive converted to their
/// parameter's type, so a mismatch here is a bug, reported as a call error.
fn string_arg(args: &[Value], index: usize) -> Result<&str, Failure> {
    match args.get(index) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(Failure::call("string required")),
    }
}

fn number_arg(args: &[Value], index: usize) -> Result<f64, Failure> {
    match args.get(index) {
        Some(Value::Number(n)) => Ok(*n),
        _ => Err(Failure::call("number required")),
    }
}

fn bool_arg(args: &[Value], index: usize) -> Result<bool, Failure> {
    match args.get(index) {
        Some(Value::Bool(b)) => Ok(*b),
        _ => Err(Failure::call("bool required")),
    }
}

fn arg(args: &[Value], index: usize) -> &Value {
    args.get(index).unwrap_or(&Value::Null)
}

/// A number as gocty converts it to a Go `int`: it must be whole and fit 64 bits.
fn whole_number(n: f64) -> Result<i64, String> {
    let go_int_range = -9.223_372_036_854_776e18..9.223_372_036_854_776e18;
    if n.fract() != 0.0 || !go_int_range.contains(&n) {
        return Err(
            "value must be a whole number, between -9223372036854775808 and 9223372036854775807"
                .to_string(),
        );
    }
    Ok(n as i64)
}

fn string(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn s(text: &str) -> Value {
        Value::String(text.to_string())
    }
    pub(super) fn n(number: f64) -> Value {
        Value::Number(number)
    }
    pub(super) fn b(value: bool) -> Value {
        Value::Bool(value)
    }
    pub(super) fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }
    pub(super) fn strs(items: &[&str]) -> Value {
        Value::List(items.iter().map(|i| s(i)).collect())
    }
    pub(super) fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
    /// Calls a function that must exist and succeed.
    pub(super) fn ok(name: &str, args: Vec<Value>) -> Value {
        match call(name, args) {
            Some(Ok(value)) => value,
            other => panic!("{name}: {other:?}"),
        }
    }
    /// Calls a function that must exist and fail; returns HCL's detail text.
    pub(super) fn fails(name: &str, args: Vec<Value>) -> String {
        match call(name, args) {
            Some(Err(err)) => err.detail(),
            other => panic!("{name} should fail: {other:?}"),
        }
    }

    #[test]
    fn every_buildx_function_is_registered() {
        let expected = "absolute add and base64decode base64encode basename bcrypt byteslen bytesslice ceil \
            chomp chunklist cidrhost cidrnetmask cidrsubnet cidrsubnets coalesce coalescelist compact concat \
            contains csvdecode dirname distinct divide element equal flatten floor format formatdate \
            formatlist greaterthan greaterthanorequalto hasindex homedir indent index indexof int join \
            jsondecode jsonencode keys length lessthan lessthanorequalto log lookup lower max md5 merge min \
            modulo multiply negate not notequal or parseint pow range regex_replace regex regexall replace \
            reverse reverselist rsadecrypt sanitize sethaselement setintersection setproduct setsubtract \
            setsymmetricdifference setunion sha1 sha256 sha512 signum slice sort split strlen substr subtract \
            timeadd timestamp title trim trimprefix trimspace trimsuffix upper urlencode uuidv4 uuidv5 values \
            zipmap";
        let mut expected: Vec<&str> = expected.split_whitespace().collect();
        expected.sort();
        assert_eq!(names().collect::<Vec<_>>(), expected);
        assert!(is_function("upper"));
        assert!(!is_function("try") && !is_function("can") && !is_function("convert"));
        assert!(call("nosuch", vec![]).is_none());
    }

    #[test]
    fn argument_errors_are_worded_as_hcl_words_them() {
        let err = call("upper", vec![n(1.0), n(2.0)])
            .and_then(Result::err)
            .expect("too many");
        assert_eq!(err.summary(), "Too many function arguments");
        assert_eq!(
            err.detail(),
            "Function \"upper\" expects only 1 argument(s)."
        );
        let err = call("substr", vec![s("abc")])
            .and_then(Result::err)
            .expect("not enough");
        assert_eq!(
            err.summary_and_detail(),
            (
                "Not enough function arguments".to_string(),
                "Function \"substr\" expects 3 argument(s). Missing value for \"offset\"."
                    .to_string()
            )
        );
        let err = call("join", vec![])
            .and_then(Result::err)
            .expect("not enough");
        assert_eq!(
            err.detail(),
            "Function \"join\" expects at least 1 argument(s). Missing value for \"separator\"."
        );
        let err = call("split", vec![s(","), list(vec![n(1.0)])])
            .and_then(Result::err)
            .expect("invalid");
        assert_eq!(err.summary(), "Invalid function argument");
        assert_eq!(
            err.detail(),
            "Invalid value for \"str\" parameter: string required."
        );
        assert!(matches!(
            err,
            FunctionError::InvalidArgument { index: 1, .. }
        ));
        assert_eq!(
            fails("upper", vec![Value::Null]),
            "Invalid value for \"str\" parameter: argument must not be null."
        );
        let err = call("jsondecode", vec![s("")])
            .and_then(Result::err)
            .expect("call error");
        assert_eq!(err.summary(), "Error in function call");
        assert_eq!(err.detail(), "Call to function \"jsondecode\" failed: EOF.");
        assert_eq!(
            err.to_string(),
            "Error in function call; Call to function \"jsondecode\" failed: EOF."
        );
    }

    #[test]
    fn arguments_are_converted_to_parameter_types() {
        assert_eq!(ok("upper", vec![n(1.0)]), s("1"));
        assert_eq!(ok("upper", vec![b(true)]), s("TRUE"));
        assert_eq!(ok("add", vec![s("1"), s("2.5")]), n(3.5));
        assert_eq!(ok("not", vec![s("true")]), b(false));
        assert_eq!(
            ok("join", vec![s("-"), list(vec![n(1.0), b(true)])]),
            s("1-true")
        );
        assert_eq!(
            fails("add", vec![s("x"), n(1.0)]),
            "Invalid value for \"a\" parameter: a number is required."
        );
    }
}
