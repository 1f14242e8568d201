//! Every function a bake file can call: cty's standard library as buildx registers it,
//! go-cty-funcs' additions, and buildx's own.
