//! yizhangtu (一张图, "one map"): a county's spatial plans as layers, queries and exports.
//! Layers point down: `http` → `engine`, `store`, `formats` → `geom` → `model`.

pub mod app;
pub mod auth;
pub mod config;
pub mod engine;
pub mod export;
pub mod formats;
pub mod geom;
pub mod http;
pub mod logs;
pub mod model;
pub mod monitor;
pub mod place;
pub mod seed;
pub mod store;
