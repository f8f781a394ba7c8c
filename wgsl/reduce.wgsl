// Workgroup reductions for the one-workgroup-per-position kernels. Every invocation of the
// workgroup calls them at the same point (uniform control flow: they hold barriers), each with
// its own value, and all get the result. The kernel defines `WG`, its workgroup size.

var<workgroup> reduce_f: array<f32, WG>;

// The maximum of x over the workgroup.
fn workgroup_max(lid: u32, x: f32) -> f32 {
    reduce_f[lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            reduce_f[lid] = max(reduce_f[lid], reduce_f[lid + s]);
        }
        workgroupBarrier();
    }
    let result = reduce_f[0];
    workgroupBarrier();
    return result;
}

// The sum of x over the workgroup.
fn workgroup_sum(lid: u32, x: f32) -> f32 {
    reduce_f[lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            reduce_f[lid] = reduce_f[lid] + reduce_f[lid + s];
        }
        workgroupBarrier();
    }
    let result = reduce_f[0];
    workgroupBarrier();
    return result;
}
