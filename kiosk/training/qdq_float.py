"""Rebuild a model's float graph from its int8 QDQ file, so it can be quantised again.

The shipped model is all we are sure to have (training checkpoints live in
``build/``, which is never committed). A QDQ graph holds everything needed:

- weights and biases: ``DequantizeLinear`` of an initializer -> the float
  initializer it stands for (the int8 grid values, exactly what the model
  computes today);
- activations: a ``QuantizeLinear -> DequantizeLinear`` pair -> ``Clip`` to
  the pair's representable range, because the quantiser folded the ReLU6
  clamps into those ranges (removing them would change the network); the
  pair on the graph's output (the logits) is simply removed.

The result computes what the QDQ file computes in float (graph optimisations
off), to rounding, and is the input ``kiosk export --from-qdq`` quantises.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _range(dtype) -> tuple[int, int]:
    import onnx

    return {onnx.TensorProto.UINT8: (0, 255), onnx.TensorProto.INT8: (-128, 127)}[dtype]


def float_graph_from_qdq(qdq_path: Path, out_path: Path) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(qdq_path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    rename: dict[str, str] = {}  # DQ output -> the tensor that replaces it
    produced_as: dict[str, str] = {}  # a tensor that now is a graph output, under that name
    new_inits, drop, new_nodes = [], set(), []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            q = numpy_helper.to_array(inits[n.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
            zp = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64) if len(n.input) > 2 else 0.0
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and scale.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zp = scale.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp
            w = ((q - zp) * scale).astype(np.float32)
            new_inits.append(numpy_helper.from_array(w, n.output[0]))
            drop.update(n.input)
            continue
        if n.op_type == "QuantizeLinear":
            dqs = consumers.get(n.output[0], [])
            if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
                raise ValueError(f"{qdq_path.name}: QuantizeLinear {n.name} is not followed by DequantizeLinear only")
            scale = float(numpy_helper.to_array(inits[n.input[1]]))
            zp_t = inits[n.input[2]]
            zp = float(numpy_helper.to_array(zp_t))
            lo, hi = _range(zp_t.data_type)
            lo_name, hi_name = n.output[0] + "_min", n.output[0] + "_max"
            new_inits += [numpy_helper.from_array(np.array((lo - zp) * scale, np.float32), lo_name),
                          numpy_helper.from_array(np.array((hi - zp) * scale, np.float32), hi_name)]
            outputs = {o.name for o in g.output}
            to_output = [d.output[0] for d in dqs if d.output[0] in outputs]
            if to_output:  # the graph's output (logits): its range is no clamp of the network's, so no Clip
                produced_as[n.input[0]] = to_output[0]
                drop.update(n.input[1:])
                continue
            clip_out = n.output[0] + "_clip"
            new_nodes.append(helper.make_node("Clip", [n.input[0], lo_name, hi_name], [clip_out], name=n.name + "_as_clip"))
            for d in dqs:
                if d.output[0] != clip_out:
                    rename[d.output[0]] = clip_out
            drop.update(n.input[1:])
            continue
        if n.op_type == "DequantizeLinear":
            continue  # an activation DQ: replaced by its Clip above
        new_nodes.append(n)

    for n in new_nodes:
        for k, name in enumerate(n.input):
            n.input[k] = produced_as.get(rename.get(name, name), rename.get(name, name))
        for k, name in enumerate(n.output):
            n.output[k] = produced_as.get(name, name)
    used = {i for n in new_nodes for i in n.input}
    kept = [t for t in g.initializer if t.name in used and t.name not in drop]
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(kept + [t for t in new_inits if t.name in used])
    del g.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path
