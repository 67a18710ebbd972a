//! f32 matrix products on `gemm` (the matrix-product engine candle itself uses), through
//! bounds-checked strided views: the embedding encoder's dense layers and attention, and the chat
//! forward pass's prompt products on dequantised weights. The one `unsafe` call into gemm lives here.

/// A read-only matrix view into a slice: `rows × cols`, element `(r, c)` at
/// `offset + r * row_stride + c * col_stride`.
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// A view; panics (a programming error, never input) when it reaches outside `data`.
    pub(crate) fn strided(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Matrix<'a> {
        let last = (rows.saturating_sub(1) * row_stride) + (cols.saturating_sub(1) * col_stride);
        assert!(
            rows == 0 || cols == 0 || offset + last < data.len(),
            "a {rows}x{cols} view at {offset} with strides ({row_stride}, {col_stride}) reaches past {} values",
            data.len()
        );
        Matrix {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    pub(crate) fn contiguous(data: &'a [f32], rows: usize, cols: usize) -> Matrix<'a> {
        assert_eq!(data.len(), rows * cols, "a {rows}x{cols} matrix");
        Matrix::strided(data, 0, rows, cols, cols, 1)
    }
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major and contiguous; on the rayon
/// pool with `parallel`, else on the calling thread.
#[allow(unsafe_code)]
pub(crate) fn matmul(
    dst: &mut [f32],
    a: &Matrix<'_>,
    b: &Matrix<'_>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.len() == m * n,
        "matmul: {m}x{k} · {}x{n} into {} values",
        b.rows,
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let stride = |x: usize| isize::try_from(x).unwrap_or(isize::MAX);
    // SAFETY: `Matrix::strided` checked that every element of `a` and `b` lies inside its slice, and
    // `dst` holds exactly m×n values addressed row-major (asserted above). `dst` is a unique borrow,
    // so it aliases neither input. gemm computes dst = alpha·dst + 1·(a·b), reading dst only when
    // accumulating.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(n),
            accumulate,
            a.data.as_ptr().add(a.offset),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr().add(b.offset),
            stride(b.col_stride),
            stride(b.row_stride),
            if accumulate { 1.0f32 } else { 0.0 },
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_views_read_transposes_in_place_and_are_bounds_checked() {
        // Rows of width 3: [1 2 3; 4 5 6]. Its transpose, read through strides, times [1; 1].
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let transposed = Matrix::strided(&data, 0, 3, 2, 1, 3);
        let ones = [1.0, 1.0];
        let mut out = [9.0; 3];
        matmul(
            &mut out,
            &transposed,
            &Matrix::contiguous(&ones, 2, 1),
            false,
            false,
        );
        assert_eq!(out, [5.0, 7.0, 9.0]);
        let outside = std::panic::catch_unwind(|| Matrix::strided(&data, 1, 2, 3, 3, 1));
        assert!(outside.is_err(), "a view past the end must be refused");
    }
}
