//! Pure numeric kernels (no Arrow / DataFusion types), each matching a numpy/scipy
//! reference bit-for-bit in algorithm so results agree to floating-point rounding.

pub mod adwin;
pub mod anderson;
pub mod binned;
pub mod cvm;
pub mod describe;
pub mod detectors;
pub mod iforest;
pub mod kolmogorov;
pub mod ks;
pub mod linalg;
pub mod mmd;
pub mod sketch;
pub mod sorted;
pub mod special;
pub mod wasserstein;
