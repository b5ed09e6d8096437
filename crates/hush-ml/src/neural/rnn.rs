//! Recurrent stacks (LSTM or GRU cells, one or both directions, several layers) with
//! hand-written forward and backward passes.
//!
//! Why not burn's `Lstm`: at the sizes hush uses (8 to 64 hidden units, batches of 128), every
//! tensor operation costs a few microseconds of dispatch and autodiff bookkeeping whatever its
//! size, and an LSTM step is about sixteen of them forward and as many backward, so a
//! BiLSTM(8)×2 epoch took ~4× PyTorch's time. Here a whole stack is one pass over plain `f32`
//! buffers; the network around it stays in burn: the stack's weights are burn parameters, its
//! output enters the autodiff graph as a leaf, and the gradients computed here are handed to
//! burn's optimizer with the others (see `train`).
//!
//! Layouts follow PyTorch (transposed: inputs multiply from the left): for each direction,
//! `w_ih` is `input × G·H`, `w_hh` is `H × G·H`, `b_ih` and `b_hh` are `G·H`, gates in the order
//! i, f, g, o (LSTM, G = 4) or r, z, n (GRU, G = 3, the reset gate applied after the recurrent
//! product as in PyTorch and Keras' `reset_after`). A bidirectional layer's output at step t is
//! `[forward h_t, backward h_t]`; the stack's result is the last layer's final state of each
//! direction (forward at the last step, backward at the first), as Keras' `Bidirectional` with
//! `return_sequences=False` gives it.

use rayon::prelude::*;

/// Rows of a batch that one task processes: fixed, so the result does not depend on the number
/// of threads (chunk gradients are summed in chunk order).
const CHUNK: usize = 32;

/// The recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

impl Cell {
    pub(crate) fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// One direction's weights (or their gradients).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DirParams {
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
}

impl DirParams {
    fn zeros_like(&self) -> DirParams {
        DirParams {
            w_ih: vec![0.0; self.w_ih.len()],
            w_hh: vec![0.0; self.w_hh.len()],
            b_ih: vec![0.0; self.b_ih.len()],
            b_hh: vec![0.0; self.b_hh.len()],
        }
    }

    fn add(&mut self, other: &DirParams) {
        for (a, b) in [
            (&mut self.w_ih, &other.w_ih),
            (&mut self.w_hh, &other.w_hh),
            (&mut self.b_ih, &other.b_ih),
            (&mut self.b_hh, &other.b_hh),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
}

/// A stack's shape and weights: `layers[l][d]` is layer `l`, direction `d` (0 forward, 1
/// backward).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stack {
    pub cell: Cell,
    pub input: usize,
    pub hidden: usize,
    pub dirs: usize,
    pub layers: Vec<Vec<DirParams>>,
}

/// One direction's tape: gate activations (`rows × T × G·H`) and the LSTM cell state or the
/// GRU recurrent candidate (`rows × T × H`).
type DirTape = (Vec<f32>, Vec<f32>);

/// One layer's tape: its output (`rows × T × dirs·H`) and each direction's [`DirTape`].
type LayerTape = (Vec<f32>, Vec<DirTape>);

/// What a chunk's forward pass keeps for its backward pass.
struct Tape {
    rows: usize,
    /// Per layer: its output (`rows × T × dirs·H`), and per direction the gate activations
    /// (`rows × T × G·H`) and the LSTM cell state or the GRU recurrent candidate
    /// (`rows × T × H`).
    layers: Vec<LayerTape>,
}

/// A forward pass kept for [`Stack::backward`].
pub(crate) struct Forward {
    tapes: Vec<Tape>,
}

impl Stack {
    /// Input width of layer `l`.
    fn layer_input(&self, l: usize) -> usize {
        if l == 0 {
            self.input
        } else {
            self.dirs * self.hidden
        }
    }

    /// Width of the stack's result: `dirs × hidden`.
    pub(crate) fn output(&self) -> usize {
        self.dirs * self.hidden
    }

    /// Final states of `rows` sequences `x` (`rows × steps × input`), `rows × dirs·H`; with
    /// `keep`, also what [`Stack::backward`] needs.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        rows: usize,
        steps: usize,
        keep: bool,
    ) -> (Vec<f32>, Option<Forward>) {
        let per_row = steps * self.input;
        let chunks: Vec<(Vec<f32>, Tape)> = x[..rows * per_row]
            .par_chunks(CHUNK * per_row)
            .map(|xc| self.forward_chunk(xc, xc.len() / per_row, steps))
            .collect();
        let mut out = Vec::with_capacity(rows * self.output());
        let mut tapes = Vec::with_capacity(chunks.len());
        for (o, t) in chunks {
            out.extend_from_slice(&o);
            tapes.push(t);
        }
        (out, keep.then_some(Forward { tapes }))
    }

    /// Gradients of every weight, given the forward pass over `x` and the loss gradient with
    /// respect to the stack's result (`rows × dirs·H`).
    pub(crate) fn backward(
        &self,
        fwd: &Forward,
        x: &[f32],
        steps: usize,
        d_out: &[f32],
    ) -> Vec<Vec<DirParams>> {
        let per_row = steps * self.input;
        let o = self.output();
        let grads: Vec<Vec<Vec<DirParams>>> = fwd
            .tapes
            .par_iter()
            .enumerate()
            .map(|(c, tape)| {
                let r0 = c * CHUNK;
                self.backward_chunk(
                    tape,
                    &x[r0 * per_row..(r0 + tape.rows) * per_row],
                    steps,
                    &d_out[r0 * o..(r0 + tape.rows) * o],
                )
            })
            .collect();
        let mut iter = grads.into_iter();
        let mut total = iter.next().unwrap_or_else(|| {
            self.layers
                .iter()
                .map(|l| l.iter().map(DirParams::zeros_like).collect())
                .collect()
        });
        for g in iter {
            for (tl, gl) in total.iter_mut().zip(&g) {
                for (td, gd) in tl.iter_mut().zip(gl) {
                    td.add(gd);
                }
            }
        }
        total
    }

    /// [`Stack::forward_chunk_any`], compiled for the widest vector unit the CPU has.
    fn forward_chunk(&self, x: &[f32], rows: usize, steps: usize) -> (Vec<f32>, Tape) {
        pulp::Arch::new().dispatch(ForwardChunk {
            stack: self,
            x,
            rows,
            steps,
        })
    }

    #[inline(always)]
    fn forward_chunk_any(&self, x: &[f32], rows: usize, steps: usize) -> (Vec<f32>, Tape) {
        let h = self.hidden;
        let width = self.dirs * h;
        let mut layers: Vec<LayerTape> = Vec::with_capacity(self.layers.len());
        for (l, dirs) in self.layers.iter().enumerate() {
            let input: &[f32] = if l == 0 { x } else { &layers[l - 1].0 };
            let in_dim = self.layer_input(l);
            let mut out = vec![0f32; rows * steps * width];
            let mut caches = Vec::with_capacity(self.dirs);
            for (d, p) in dirs.iter().enumerate() {
                caches.push(dir_forward(
                    self.cell,
                    h,
                    p,
                    input,
                    rows,
                    steps,
                    in_dim,
                    d == 1,
                    &mut out,
                    width,
                    d * h,
                ));
            }
            layers.push((out, caches));
        }
        let last = &layers[self.layers.len() - 1].0;
        let mut result = vec![0f32; rows * width];
        for r in 0..rows {
            for d in 0..self.dirs {
                let t = if d == 0 { steps - 1 } else { 0 };
                let src = &last[(r * steps + t) * width + d * h..][..h];
                result[r * width + d * h..][..h].copy_from_slice(src);
            }
        }
        (result, Tape { rows, layers })
    }

    /// [`Stack::backward_chunk_any`], compiled for the widest vector unit the CPU has.
    fn backward_chunk(
        &self,
        tape: &Tape,
        x: &[f32],
        steps: usize,
        d_result: &[f32],
    ) -> Vec<Vec<DirParams>> {
        pulp::Arch::new().dispatch(BackwardChunk {
            stack: self,
            tape,
            x,
            steps,
            d_result,
        })
    }

    #[inline(always)]
    fn backward_chunk_any(
        &self,
        tape: &Tape,
        x: &[f32],
        steps: usize,
        d_result: &[f32],
    ) -> Vec<Vec<DirParams>> {
        let (h, rows) = (self.hidden, tape.rows);
        let width = self.dirs * h;
        // The loss gradient with respect to the last layer's outputs: only the final states.
        let mut d_out = vec![0f32; rows * steps * width];
        for r in 0..rows {
            for d in 0..self.dirs {
                let t = if d == 0 { steps - 1 } else { 0 };
                let dst = &mut d_out[(r * steps + t) * width + d * h..][..h];
                dst.copy_from_slice(&d_result[r * width + d * h..][..h]);
            }
        }
        let mut grads: Vec<Vec<DirParams>> = self
            .layers
            .iter()
            .map(|l| l.iter().map(DirParams::zeros_like).collect())
            .collect();
        for l in (0..self.layers.len()).rev() {
            let input: &[f32] = if l == 0 { x } else { &tape.layers[l - 1].0 };
            let in_dim = self.layer_input(l);
            let mut d_in = (l > 0).then(|| vec![0f32; rows * steps * in_dim]);
            let (out, caches) = &tape.layers[l];
            for (d, p) in self.layers[l].iter().enumerate() {
                dir_backward(
                    self.cell,
                    h,
                    p,
                    input,
                    rows,
                    steps,
                    in_dim,
                    d == 1,
                    out,
                    width,
                    d * h,
                    &caches[d],
                    &d_out,
                    &mut grads[l][d],
                    d_in.as_deref_mut(),
                );
            }
            if let Some(d) = d_in {
                d_out = d;
            }
        }
        grads
    }
}

// The kernels run under `pulp::Arch::dispatch`, which compiles them (everything they inline) for
// each vector unit and picks the CPU's at run time: on x86-64 AVX2 does twice SSE2's lanes per
// instruction. They only use separate multiplies and adds (never fused), each element's in the
// same order, so every vector width gives the same bits and a model's bytes do not depend on the
// CPU. Hence `#[inline(always)]` down to the innermost loop.

struct ForwardChunk<'a> {
    stack: &'a Stack,
    x: &'a [f32],
    rows: usize,
    steps: usize,
}

impl pulp::WithSimd for ForwardChunk<'_> {
    type Output = (Vec<f32>, Tape);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        self.stack.forward_chunk_any(self.x, self.rows, self.steps)
    }
}

struct BackwardChunk<'a> {
    stack: &'a Stack,
    tape: &'a Tape,
    x: &'a [f32],
    steps: usize,
    d_result: &'a [f32],
}

impl pulp::WithSimd for BackwardChunk<'_> {
    type Output = Vec<Vec<DirParams>>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        self.stack
            .backward_chunk_any(self.tape, self.x, self.steps, self.d_result)
    }
}

/// Columns of `c` that the products below keep in registers while they run over `k` (eight AVX2
/// registers; narrower tiles of 32, 16 and 8 take what is left, so small layers gain too).
/// Tiling changes which loads and stores happen, never the order in which an element of `c` adds
/// its terms, so the results are the same bits as the plain triple loop.
const TILE: usize = 64;

/// Rows of `a` and `b` that [`gemm_at_b_acc`] takes at a time, so that they stay in L1 while
/// every tile of `c` passes over them.
const ROW_BLOCK: usize = 16;

/// Calls `tile(j0, width)` over `0..n` in tiles of [`TILE`], then 32, 16 and 8 columns, and
/// returns where the columns no tile covers begin.
#[inline(always)]
fn tiles(n: usize, mut tile: impl FnMut(usize, usize)) -> usize {
    let mut j0 = 0;
    while j0 + TILE <= n {
        tile(j0, TILE);
        j0 += TILE;
    }
    for w in [32, 16, 8] {
        if j0 + w <= n {
            tile(j0, w);
            j0 += w;
        }
    }
    j0
}

/// `c[j0..j0+T] += Σ_p ai[p] · b[p][j0..j0+T]`, in registers.
#[inline(always)]
fn row_tile<const T: usize>(ai: &[f32], b: &[f32], n: usize, j0: usize, ci: &mut [f32]) {
    let mut acc = [0f32; T];
    acc.copy_from_slice(&ci[j0..j0 + T]);
    for (p, &av) in ai.iter().enumerate() {
        let bp = &b[p * n + j0..p * n + j0 + T];
        for (x, &y) in acc.iter_mut().zip(bp) {
            *x += av * y;
        }
    }
    ci[j0..j0 + T].copy_from_slice(&acc);
}

/// `cp[j0..j0+T] += Σ_{i in rows} a[i][p] · b[i][j0..j0+T]`, in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn col_tile<const T: usize>(
    a: &[f32],
    k: usize,
    p: usize,
    b: &[f32],
    n: usize,
    rows: std::ops::Range<usize>,
    j0: usize,
    cp: &mut [f32],
) {
    let mut acc = [0f32; T];
    acc.copy_from_slice(&cp[j0..j0 + T]);
    for i in rows {
        let av = a[i * k + p];
        let bi = &b[i * n + j0..i * n + j0 + T];
        for (x, &y) in acc.iter_mut().zip(bi) {
            *x += av * y;
        }
    }
    cp[j0..j0 + T].copy_from_slice(&acc);
}

/// `c (m × n) += a (m × k) · b (k × n)`, row-major; each element adds its `k` terms in order.
#[inline(always)]
fn gemm_acc(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, c: &mut [f32]) {
    for i in 0..m {
        let ai = &a[i * k..(i + 1) * k];
        let ci = &mut c[i * n..(i + 1) * n];
        let rest = tiles(n, |j0, w| match w {
            TILE => row_tile::<TILE>(ai, b, n, j0, ci),
            32 => row_tile::<32>(ai, b, n, j0, ci),
            16 => row_tile::<16>(ai, b, n, j0, ci),
            _ => row_tile::<8>(ai, b, n, j0, ci),
        });
        if rest < n {
            for (p, &av) in ai.iter().enumerate() {
                let bp = &b[p * n + rest..(p + 1) * n];
                for (cv, &bv) in ci[rest..].iter_mut().zip(bp) {
                    *cv += av * bv;
                }
            }
        }
    }
}

/// `c (k × n) += aᵀ · b`, with `a` `m × k` and `b` `m × n`; each element adds its `m` terms in
/// order (row 0 of `a` and `b` first).
#[inline(always)]
fn gemm_at_b_acc(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, c: &mut [f32]) {
    for i0 in (0..m).step_by(ROW_BLOCK) {
        let i1 = (i0 + ROW_BLOCK).min(m);
        for p in 0..k {
            let cp = &mut c[p * n..(p + 1) * n];
            let rest = tiles(n, |j0, w| match w {
                TILE => col_tile::<TILE>(a, k, p, b, n, i0..i1, j0, cp),
                32 => col_tile::<32>(a, k, p, b, n, i0..i1, j0, cp),
                16 => col_tile::<16>(a, k, p, b, n, i0..i1, j0, cp),
                _ => col_tile::<8>(a, k, p, b, n, i0..i1, j0, cp),
            });
            if rest < n {
                for i in i0..i1 {
                    let av = a[i * k + p];
                    let bi = &b[i * n + rest..(i + 1) * n];
                    for (cv, &bv) in cp[rest..].iter_mut().zip(bi) {
                        *cv += av * bv;
                    }
                }
            }
        }
    }
}

/// The transpose of a `rows × cols` matrix.
#[inline(always)]
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// `tanh`, as a rational function (Eigen's `generic_fast_tanh_float`): branch-free, so a loop of
/// it vectorises, and within a few ulps of `f32::tanh`.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_7e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = x2 * A13 + A11;
    p = x2 * p + A9;
    p = x2 * p + A7;
    p = x2 * p + A5;
    p = x2 * p + A3;
    p = x2 * p + A1;
    p *= x;
    let mut q = x2 * B6 + B4;
    q = x2 * q + B2;
    q = x2 * q + B0;
    p / q
}

/// The logistic function, from [`tanh`].
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    0.5 * tanh(0.5 * x) + 0.5
}

/// One direction of one layer, forward: writes `h` into `out` (`rows × T × width`, at column
/// `off`), returns the gate activations and the cell state (LSTM) or recurrent candidate (GRU).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dir_forward(
    cell: Cell,
    h: usize,
    p: &DirParams,
    input: &[f32],
    rows: usize,
    steps: usize,
    in_dim: usize,
    reverse: bool,
    out: &mut [f32],
    width: usize,
    off: usize,
) -> (Vec<f32>, Vec<f32>) {
    let gh = cell.gates() * h;
    let mut gates = vec![0f32; rows * steps * gh];
    for g in gates.chunks_exact_mut(gh) {
        g.copy_from_slice(&p.b_ih);
    }
    gemm_acc(input, rows * steps, in_dim, &p.w_ih, gh, &mut gates);
    let mut aux = vec![0f32; rows * steps * h];
    let mut hp = vec![0f32; gh];
    let mut h_prev = vec![0f32; h];
    let mut c_prev = vec![0f32; h];
    for r in 0..rows {
        h_prev.fill(0.0);
        c_prev.fill(0.0);
        for s in 0..steps {
            let t = if reverse { steps - 1 - s } else { s };
            let row = r * steps + t;
            hp.copy_from_slice(&p.b_hh);
            gemm_acc(&h_prev, 1, h, &p.w_hh, gh, &mut hp);
            let g = &mut gates[row * gh..(row + 1) * gh];
            let a = &mut aux[row * h..(row + 1) * h];
            let o = &mut out[row * width + off..row * width + off + h];
            match cell {
                Cell::Lstm => {
                    for (gv, &hv) in g.iter_mut().zip(&hp) {
                        *gv += hv;
                    }
                    let (ifg, go) = g.split_at_mut(3 * h);
                    let (if_, gg) = ifg.split_at_mut(2 * h);
                    for v in if_.iter_mut().chain(go.iter_mut()) {
                        *v = sigmoid(*v);
                    }
                    for v in gg.iter_mut() {
                        *v = tanh(*v);
                    }
                    for k in 0..h {
                        let c = if_[h + k] * c_prev[k] + if_[k] * gg[k];
                        a[k] = c;
                        c_prev[k] = c;
                        let hv = go[k] * tanh(c);
                        o[k] = hv;
                        h_prev[k] = hv;
                    }
                }
                Cell::Gru => {
                    for k in 0..2 * h {
                        g[k] = sigmoid(g[k] + hp[k]);
                    }
                    for k in 0..h {
                        let hn = hp[2 * h + k];
                        a[k] = hn;
                        let n = tanh(g[2 * h + k] + g[k] * hn);
                        g[2 * h + k] = n;
                        let z = g[h + k];
                        let hv = (1.0 - z) * n + z * h_prev[k];
                        o[k] = hv;
                        h_prev[k] = hv;
                    }
                }
            }
        }
    }
    (gates, aux)
}

/// One direction of one layer, backward: adds this direction's weight gradients to `g` and,
/// when asked, the gradient with respect to the layer's input to `d_in`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dir_backward(
    cell: Cell,
    h: usize,
    p: &DirParams,
    input: &[f32],
    rows: usize,
    steps: usize,
    in_dim: usize,
    reverse: bool,
    out: &[f32],
    width: usize,
    off: usize,
    cache: &(Vec<f32>, Vec<f32>),
    d_out: &[f32],
    g: &mut DirParams,
    d_in: Option<&mut [f32]>,
) {
    let gh = cell.gates() * h;
    let (gates, aux) = cache;
    let w_hh_t = transpose(&p.w_hh, h, gh);
    let mut dx = vec![0f32; rows * steps * gh];
    let mut dhp = vec![0f32; gh];
    let mut dh = vec![0f32; h];
    let mut dh_next = vec![0f32; h];
    let mut dc_next = vec![0f32; h];
    let zeros = vec![0f32; h];
    let mut pair_h = Vec::with_capacity(rows * steps * h);
    let mut pair_d = Vec::with_capacity(rows * steps * gh);
    for r in 0..rows {
        dh_next.fill(0.0);
        dc_next.fill(0.0);
        for s in (0..steps).rev() {
            let t = if reverse { steps - 1 - s } else { s };
            let row = r * steps + t;
            let prev = (s > 0).then(|| if reverse { row + 1 } else { row - 1 });
            let h_prev = match prev {
                Some(pr) => &out[pr * width + off..pr * width + off + h],
                None => &zeros[..],
            };
            for k in 0..h {
                dh[k] = d_out[row * width + off + k] + dh_next[k];
            }
            let ga = &gates[row * gh..(row + 1) * gh];
            let a = &aux[row * h..(row + 1) * h];
            let dxr = &mut dx[row * gh..(row + 1) * gh];
            match cell {
                Cell::Lstm => {
                    let c_prev = match prev {
                        Some(pr) => &aux[pr * h..(pr + 1) * h],
                        None => &zeros[..],
                    };
                    for k in 0..h {
                        let (i, f, gg, o) = (ga[k], ga[h + k], ga[2 * h + k], ga[3 * h + k]);
                        let tc = tanh(a[k]);
                        let dc = dc_next[k] + dh[k] * o * (1.0 - tc * tc);
                        dxr[k] = dc * gg * i * (1.0 - i);
                        dxr[h + k] = dc * c_prev[k] * f * (1.0 - f);
                        dxr[2 * h + k] = dc * i * (1.0 - gg * gg);
                        dxr[3 * h + k] = dh[k] * tc * o * (1.0 - o);
                        dc_next[k] = dc * f;
                    }
                    dhp.copy_from_slice(dxr);
                    dh_next.fill(0.0);
                }
                Cell::Gru => {
                    for k in 0..h {
                        let (rg, z, n) = (ga[k], ga[h + k], ga[2 * h + k]);
                        let an = dh[k] * (1.0 - z) * (1.0 - n * n);
                        let az = dh[k] * (h_prev[k] - n) * z * (1.0 - z);
                        let ar = an * a[k] * rg * (1.0 - rg);
                        dxr[k] = ar;
                        dxr[h + k] = az;
                        dxr[2 * h + k] = an;
                        dhp[k] = ar;
                        dhp[h + k] = az;
                        dhp[2 * h + k] = an * rg;
                        dh_next[k] = dh[k] * z;
                    }
                }
            }
            for (b, &v) in g.b_hh.iter_mut().zip(&dhp) {
                *b += v;
            }
            if prev.is_some() {
                // The recurrent weights' gradient sums these outer products in this order; one
                // product over all of them at the end (same order) reads `g.w_hh` once, not
                // once per step.
                pair_h.extend_from_slice(h_prev);
                pair_d.extend_from_slice(&dhp);
                gemm_acc(&dhp, 1, gh, &w_hh_t, h, &mut dh_next);
            }
        }
    }
    gemm_at_b_acc(
        &pair_h,
        pair_h.len() / h.max(1),
        h,
        &pair_d,
        gh,
        &mut g.w_hh,
    );
    for dxr in dx.chunks_exact(gh) {
        for (b, &v) in g.b_ih.iter_mut().zip(dxr) {
            *b += v;
        }
    }
    gemm_at_b_acc(input, rows * steps, in_dim, &dx, gh, &mut g.w_ih);
    if let Some(d_in) = d_in {
        let w_ih_t = transpose(&p.w_ih, in_dim, gh);
        gemm_acc(&dx, rows * steps, gh, &w_ih_t, in_dim, d_in);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    fn stack(cell: Cell, input: usize, hidden: usize, dirs: usize, layers: usize) -> Stack {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let gh = cell.gates() * hidden;
        let mut v =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.6..0.6)).collect() };
        let layers = (0..layers)
            .map(|l| {
                let in_dim = if l == 0 { input } else { dirs * hidden };
                (0..dirs)
                    .map(|_| DirParams {
                        w_ih: v(in_dim * gh),
                        w_hh: v(hidden * gh),
                        b_ih: v(gh),
                        b_hh: v(gh),
                    })
                    .collect()
            })
            .collect();
        Stack {
            cell,
            input,
            hidden,
            dirs,
            layers,
        }
    }

    /// The tiled products give the plain triple loops' bits, on sizes across the tile and
    /// row-block edges.
    #[test]
    fn tiled_products_are_the_plain_loops_bit_for_bit() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut v =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        // The plain loop, `c[i][j] += a[i][p] · b[p][j]` for `p` in order; `aᵀ · b` is the same
        // product on the transpose of `a`.
        let plain = |a: &[f32], m: usize, k: usize, b: &[f32], n: usize, c: &mut [f32]| {
            for i in 0..m {
                for p in 0..k {
                    for j in 0..n {
                        c[i * n + j] += a[i * k + p] * b[p * n + j];
                    }
                }
            }
        };
        for (m, k, n) in [
            (1, 64, 256),
            (37, 5, 130),
            (3, 256, 64),
            (2, 7, 8),
            (17, 3, 63),
            (1, 8, 32),
        ] {
            let (a, b, c) = (v(m * k), v(k * n), v(m * n));
            let (mut want, mut got) = (c.clone(), c);
            plain(&a, m, k, &b, n, &mut want);
            gemm_acc(&a, m, k, &b, n, &mut got);
            assert_eq!(want, got, "gemm_acc {m}x{k}x{n}");

            let (a, b, c) = (v(m * k), v(m * n), v(k * n));
            let (mut want, mut got) = (c.clone(), c);
            plain(&transpose(&a, m, k), k, m, &b, n, &mut want);
            gemm_at_b_acc(&a, m, k, &b, n, &mut got);
            assert_eq!(want, got, "gemm_at_b_acc {m}x{k}x{n}");
        }
    }

    #[test]
    fn fast_tanh_matches_std() {
        let mut worst = 0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.0007;
            worst = worst.max((tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
        assert!((sigmoid(0.3) - 1.0 / (1.0 + (-0.3f32).exp())).abs() < 2e-6);
    }

    /// The analytic gradient of `loss = Σ result · w` against central differences.
    fn check_gradients(cell: Cell, dirs: usize, layers: usize) {
        let (rows, steps, input, hidden) = (CHUNK + 3, 5, 3, 4);
        let s = stack(cell, input, hidden, dirs, layers);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let x: Vec<f32> = (0..rows * steps * input)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let w: Vec<f32> = (0..rows * s.output())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let loss = |s: &Stack| -> f64 {
            let (out, _) = s.forward(&x, rows, steps, false);
            out.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum()
        };
        let (_, fwd) = s.forward(&x, rows, steps, true);
        let grads = s.backward(&fwd.unwrap(), &x, steps, &w);
        let eps = 1e-2f32;
        let mut checked = 0;
        #[allow(clippy::needless_range_loop)] // l, d index the perturbed copies too
        for l in 0..layers {
            for d in 0..dirs {
                for which in 0..4 {
                    let len = match which {
                        0 => s.layers[l][d].w_ih.len(),
                        1 => s.layers[l][d].w_hh.len(),
                        2 => s.layers[l][d].b_ih.len(),
                        _ => s.layers[l][d].b_hh.len(),
                    };
                    for i in (0..len).step_by(5) {
                        let mut plus = s.clone();
                        let mut minus = s.clone();
                        match which {
                            0 => {
                                plus.layers[l][d].w_ih[i] += eps;
                                minus.layers[l][d].w_ih[i] -= eps;
                            }
                            1 => {
                                plus.layers[l][d].w_hh[i] += eps;
                                minus.layers[l][d].w_hh[i] -= eps;
                            }
                            2 => {
                                plus.layers[l][d].b_ih[i] += eps;
                                minus.layers[l][d].b_ih[i] -= eps;
                            }
                            _ => {
                                plus.layers[l][d].b_hh[i] += eps;
                                minus.layers[l][d].b_hh[i] -= eps;
                            }
                        }
                        let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(eps));
                        let g = &grads[l][d];
                        let analytic = f64::from(match which {
                            0 => g.w_ih[i],
                            1 => g.w_hh[i],
                            2 => g.b_ih[i],
                            _ => g.b_hh[i],
                        });
                        let tol = 2e-2 * (1.0 + numeric.abs().max(analytic.abs()));
                        assert!(
                            (numeric - analytic).abs() < tol,
                            "{cell:?} layer {l} dir {d} param {which}[{i}]: numeric {numeric} analytic {analytic}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 20);
    }

    #[test]
    fn lstm_gradients_match_finite_differences() {
        check_gradients(Cell::Lstm, 2, 2);
        check_gradients(Cell::Lstm, 1, 1);
    }

    #[test]
    fn gru_gradients_match_finite_differences() {
        check_gradients(Cell::Gru, 2, 2);
        check_gradients(Cell::Gru, 1, 1);
    }

    #[test]
    fn lstm_forward_matches_the_equations() {
        // One step, one unit, by hand.
        let s = Stack {
            cell: Cell::Lstm,
            input: 1,
            hidden: 1,
            dirs: 1,
            layers: vec![vec![DirParams {
                w_ih: vec![0.5, -0.25, 1.0, 0.75],
                w_hh: vec![0.0; 4],
                b_ih: vec![0.1, 1.0, 0.0, -0.2],
                b_hh: vec![0.0; 4],
            }]],
        };
        let x = 2.0f32;
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (i, g, o) = (sig(0.5 * x + 0.1), (1.0 * x).tanh(), sig(0.75 * x - 0.2));
        let want = o * (i * g).tanh();
        let (out, _) = s.forward(&[x], 1, 1, false);
        assert!((out[0] - want).abs() < 1e-5, "{} vs {want}", out[0]);
    }
}
