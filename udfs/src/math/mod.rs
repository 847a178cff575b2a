//! Pure numeric kernels (no Arrow / DataFusion types), each matching a numpy/scipy
//! reference bit-for-bit in algorithm so results agree to floating-point rounding.

pub mod binned;
pub mod describe;
pub mod kolmogorov;
pub mod ks;
pub mod linalg;
pub mod wasserstein;
