#pragma once
// A bounds sweep over the ranks of an MPI job (`mpirun -n K iclbench bounds ... --out DIR`).
//
// Rank 0 runs the sweep as one process would (it alone claims, reads and writes DIR); the points
// it lacks are computed by all ranks, rank 0 included, each point a unit weighted by
// estimate_point_seconds(), and every result comes back to rank 0 over MPI as the JSON text of
// its points/<id>.json, which rank 0 saves as it arrives. A point's result is a pure function of
// (seed, point) and the bytes written do not depend on which rank computed it, so the outputs are
// byte-identical to a one-process run for any K. Design and measurements: docs/DESIGN.md,
// "Sweeps over MPI".

#include "bounds/sweep.hpp"
#include "runtime/cluster.hpp"

namespace iclbench::bounds {

// Rank 0: the PointRunner that spreads the pending points over `cluster` (with one rank it
// computes them in order here, as run_sweep's default does).
PointRunner cluster_runner(runtime::Cluster& cluster);

// Ranks > 0: receives the sweep from rank 0, computes the points it is given, and returns rank
// 0's exit code (also when rank 0 ended before the sweep started: a refused --out).
int serve_points(runtime::Cluster& cluster);

}  // namespace iclbench::bounds
