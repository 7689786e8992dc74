// tally.wgsl: confusion counting shared (by concatenation, see src/backend/gpu/kernels.rs) by
// loss_metrics.wgsl, lr_pass.wgsl and mlp_pass.wgsl. Counts are integers, so atomics keep
// them exact whatever the order: a workgroup counts its rows in `hist` (workgroup memory,
// zeroed at the workgroup's start) when the set's K·K cells fit HIST_CELLS (from the
// prelude), then adds each nonzero cell to the set's tally; with more cells each row adds to
// the tally directly. reduce_stats.wgsl moves the tally into the record and zeroes it.
//
// The including file declares `tally: array<atomic<u32>>` (storage, read_write): each set's
// [K, K] counts at its `base`.

var<workgroup> hist: array<atomic<u32>, HIST_CELLS>;

// Counts one row in cell `cell` of a set with `cells` cells.
fn tally_row(base: u32, cells: u32, cell: u32) {
    if (cells <= HIST_CELLS) {
        atomicAdd(&hist[cell], 1u);
    } else {
        atomicAdd(&tally[base + cell], 1u);
    }
}

// Adds the workgroup's counts to the tally: every invocation k of `lanes`, after a barrier
// that follows the last tally_row.
fn tally_flush(k: u32, lanes: u32, base: u32, cells: u32) {
    if (cells <= HIST_CELLS) {
        for (var i = k; i < cells; i += lanes) {
            let v = atomicLoad(&hist[i]);
            if (v != 0u) {
                atomicAdd(&tally[base + i], v);
            }
        }
    }
}

// The cell of a row of true class y (an f32 class index) predicted as p, of K classes.
fn tally_cell(k: u32, y: f32, p: u32) -> u32 {
    return min(u32(y), k - 1u) * k + p;
}
