"""RigAnimation <-> glTF 2.0 binary (.glb), written and read with pygltflib.

The file holds one scene:
* the skeleton: one node per bone (names from the rig), rest translation in metres, no rest rotation (rest
  frames are the world axes, as in BVH); Y up, the character faces +Z (glTF's own axes);
* a mannequin mesh, skinned to the skeleton: one box per bone from its head toward its children (a short
  box along the bone for a leaf), every vertex weighted 1 to its bone (rigid skinning), so the animation is
  visible on import; inverse bind matrices are the inverses of the bones' rest world transforms;
* one animation, linear interpolation at the animation's fps: a rotation channel for every bone that
  turns, a translation channel for every bone that moves;
* in place: a node `root_motion` beside the skeleton whose translation channel carries the ground
  trajectory taken out of the skeleton (for the engine's character controller).
"""

from __future__ import annotations

import numpy as np
import pygltflib as gl

from models.motion.retarget import RigAnimation
from models.motion.rigs import Rig

TRAJECTORY_NODE = "root_motion"
MESH_NAME = "mannequin"
_BOX_FACES = ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1))  # (axis, sign) of each face's normal


class _Blob:
    """The binary chunk: buffer views and accessors appended one after another (4-byte aligned)."""

    def __init__(self, doc: gl.GLTF2) -> None:
        self.doc, self.data = doc, bytearray()

    def add(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint16): gl.UNSIGNED_SHORT,
                     np.dtype(np.uint32): gl.UNSIGNED_INT}[array.dtype]
        offset = len(self.data)
        self.data += array.tobytes()
        self.data += b"\0" * (-len(self.data) % 4)
        self.doc.bufferViews.append(gl.BufferView(buffer=0, byteOffset=offset, byteLength=array.nbytes,
                                                  target=target))
        rows = array.reshape(len(array), -1)
        accessor = gl.Accessor(bufferView=len(self.doc.bufferViews) - 1, componentType=component,
                               count=len(array), type=kind)
        if bounds:
            accessor.min, accessor.max = rows.min(0).tolist(), rows.max(0).tolist()
        self.doc.accessors.append(accessor)
        return len(self.doc.accessors) - 1


def rest_world(rig: Rig, rest: np.ndarray) -> np.ndarray:
    """(B, 3) world positions of the bones in the rest pose."""
    out = np.zeros_like(rest)
    for b, p in enumerate(rig.parents):
        out[b] = rest[b] + (out[p] if p >= 0 else 0.0)
    return out


def _box(head: np.ndarray, tail: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box from `head` to `tail`, `width` across: (24, 3) positions, (24, 3) normals, (36,) indices."""
    axis = tail - head
    length = max(float(np.linalg.norm(axis)), 1e-4)
    u = axis / length if np.linalg.norm(axis) > 1e-9 else np.array([0.0, 1.0, 0.0])
    helper = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v)
    w = np.cross(u, v)
    frame = np.stack([v, w, u])  # rows: local x, y, z (z along the bone)
    center = head + u * length / 2
    half = np.array([width / 2, width / 2, length / 2])
    positions, normals, indices = [], [], []
    for axis_i, sign in _BOX_FACES:
        a, b = [k for k in range(3) if k != axis_i]
        corners = []
        for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            local = np.zeros(3)
            local[axis_i], local[a], local[b] = sign, s, t
            corners.append(center + (local * half) @ frame)
        normal = np.zeros(3)
        normal[axis_i] = sign
        n = normal @ frame
        if np.dot(np.cross(corners[1] - corners[0], corners[2] - corners[0]), n) < 0:
            corners.reverse()  # counter-clockwise seen from outside
        base = len(positions)
        positions += corners
        normals += [n] * 4
        indices += [base, base + 1, base + 2, base, base + 2, base + 3]
    return np.asarray(positions), np.asarray(normals), np.asarray(indices)


def mannequin(rig: Rig, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of the rest skeleton: (V, 3) positions, (V, 3) normals, (V,) bone per vertex, (I,) indices."""
    world = rest_world(rig, rest)
    kids: list[list[int]] = [[] for _ in rig.names]
    for b, p in enumerate(rig.parents):
        if p >= 0:
            kids[p].append(b)
    parts = []
    for b in range(rig.num_bones):
        if kids[b]:
            tail = world[kids[b]].mean(axis=0)
        elif rig.parents[b] >= 0:
            tail = world[b] + rest[b] * 0.5  # a leaf: half its own bone onward
        else:
            continue
        length = float(np.linalg.norm(tail - world[b]))
        if length < 1e-4:
            continue
        parts.append((b, *_box(world[b], tail, float(np.clip(0.35 * length, 0.008, 0.1)))))
    positions = np.concatenate([p[1] for p in parts])
    normals = np.concatenate([p[2] for p in parts])
    bones = np.concatenate([np.full(len(p[1]), p[0]) for p in parts])
    indices = np.concatenate([p[3] + 24 * k for k, p in enumerate(parts)])
    return positions, normals, bones, indices


def _skeleton_nodes(doc: gl.GLTF2, rig: Rig, rest: np.ndarray) -> list[int]:
    """Append one node per bone; return the root bones' node indices."""
    for b, name in enumerate(rig.names):
        children = [c for c, p in enumerate(rig.parents) if p == b]
        doc.nodes.append(gl.Node(name=name, translation=rest[b].tolist(), children=children or None))
    return [b for b, p in enumerate(rig.parents) if p < 0]


def _mesh(doc: gl.GLTF2, blob: _Blob, rig: Rig, rest: np.ndarray) -> int:
    """Append the skinned mannequin (mesh, material, skin, node); return its node index."""
    positions, normals, bones, indices = mannequin(rig, rest)
    joints = np.zeros((len(bones), 4), dtype=np.uint16)
    joints[:, 0] = bones
    weights = np.zeros((len(bones), 4), dtype=np.float32)
    weights[:, 0] = 1.0
    attributes = gl.Attributes(
        POSITION=blob.add(positions.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=blob.add(normals.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER),
        JOINTS_0=blob.add(joints, gl.VEC4, gl.ARRAY_BUFFER),
        WEIGHTS_0=blob.add(weights, gl.VEC4, gl.ARRAY_BUFFER))
    index = blob.add(indices.astype(np.uint16 if len(positions) < 65535 else np.uint32), gl.SCALAR,
                     gl.ELEMENT_ARRAY_BUFFER)
    doc.materials.append(gl.Material(name="mannequin", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[0.62, 0.66, 0.72, 1.0], metallicFactor=0.0, roughnessFactor=0.8)))
    doc.meshes.append(gl.Mesh(name=MESH_NAME, primitives=[gl.Primitive(attributes=attributes, indices=index,
                                                                       material=0)]))
    world = rest_world(rig, rest)
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (rig.num_bones, 1, 1))
    inverse_bind[:, :3, 3] = -world
    inverse_bind = inverse_bind.transpose(0, 2, 1).reshape(rig.num_bones, 16)  # column-major, as glTF
    roots = [b for b, p in enumerate(rig.parents) if p < 0]
    doc.skins.append(gl.Skin(name=rig.name, joints=list(range(rig.num_bones)), skeleton=roots[0],
                             inverseBindMatrices=blob.add(inverse_bind.astype(np.float32), gl.MAT4)))
    doc.nodes.append(gl.Node(name=MESH_NAME, mesh=0, skin=0))
    return len(doc.nodes) - 1


def _animation(doc: gl.GLTF2, blob: _Blob, anim: RigAnimation, trajectory_node: int | None) -> None:
    times = (np.arange(anim.num_frames) / anim.fps).astype(np.float32)
    time = blob.add(times, gl.SCALAR, bounds=True)
    samplers, channels = [], []

    def channel(node: int, path: str, values: np.ndarray, kind: str) -> None:
        samplers.append(gl.AnimationSampler(input=time, output=blob.add(values.astype(np.float32), kind),
                                            interpolation=gl.ANIM_LINEAR))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=node, path=path)))

    rotations = anim.rotations[..., [1, 2, 3, 0]]  # glTF: x, y, z, w
    rotations = rotations / np.linalg.norm(rotations, axis=-1, keepdims=True)
    for b in range(anim.rig.num_bones):
        if np.abs(anim.rotations[:, b] - (1.0, 0.0, 0.0, 0.0)).max() > 1e-7:
            channel(b, "rotation", rotations[:, b], gl.VEC4)
        if np.abs(anim.translations[:, b] - anim.rest[b]).max() > 1e-7:
            channel(b, "translation", anim.translations[:, b], gl.VEC3)
    if trajectory_node is not None:
        channel(trajectory_node, "translation", anim.trajectory, gl.VEC3)
    doc.animations.append(gl.Animation(name="motion", samplers=samplers, channels=channels))


def animation_to_glb(anim: RigAnimation, generator: str = "hmu") -> bytes:
    """The animation as a .glb file (see the module doc)."""
    rig = anim.rig
    rest = anim.rest.copy()
    root = anim.motion_root
    rest[root] = anim.translations[0, root]  # the rest pose stands where the motion starts
    anim = anim.with_(rest=rest)
    doc = gl.GLTF2(asset=gl.Asset(version="2.0", generator=generator), scene=0)
    blob = _Blob(doc)
    roots = _skeleton_nodes(doc, rig, rest)
    scene_nodes = [*roots, _mesh(doc, blob, rig, rest)]
    trajectory_node = None
    if anim.trajectory is not None:
        doc.nodes.append(gl.Node(name=TRAJECTORY_NODE, translation=anim.trajectory[0].tolist()))
        trajectory_node = len(doc.nodes) - 1
        scene_nodes.append(trajectory_node)
    _animation(doc, blob, anim, trajectory_node)
    doc.scenes.append(gl.Scene(name=rig.name, nodes=scene_nodes))
    doc.buffers.append(gl.Buffer(byteLength=len(blob.data)))
    doc.set_binary_blob(bytes(blob.data))
    return b"".join(doc.save_to_bytes())  # pygltflib gives the chunks of the file


def _read_accessor(doc: gl.GLTF2, blob: bytes, index: int) -> np.ndarray:
    accessor = doc.accessors[index]
    view = doc.bufferViews[accessor.bufferView]
    dtype = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32}[accessor.componentType]
    width = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}[accessor.type]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    flat = np.frombuffer(blob, dtype=dtype, count=accessor.count * width, offset=start)
    return flat.reshape(accessor.count, width) if width > 1 else flat


def read_glb(data: bytes) -> dict:
    """A .glb written by `animation_to_glb` -> {"names", "parents", "rest", "times", "rotations" (T, B, 4) w
    first, "translations" (T, B, 3), "trajectory" (T, 3) or None, "inverse_bind" (B, 4, 4)} of the skin's bones."""
    doc = gl.GLTF2.load_from_bytes(data)
    blob = doc.binary_blob()
    skin = doc.skins[0]
    bones = list(skin.joints)
    slot = {node: b for b, node in enumerate(bones)}
    parents = [-1] * len(bones)
    for node in bones:
        for child in doc.nodes[node].children or []:
            parents[slot[child]] = slot[node]
    rest = np.array([doc.nodes[n].translation or [0.0, 0.0, 0.0] for n in bones], dtype=np.float64)
    rest_rot = np.array([doc.nodes[n].rotation or [0.0, 0.0, 0.0, 1.0] for n in bones], dtype=np.float64)
    animation = doc.animations[0]
    times = _read_accessor(doc, blob, animation.samplers[0].input).astype(np.float64)
    rotations = np.broadcast_to(rest_rot[:, [3, 0, 1, 2]], (len(times), len(bones), 4)).copy()
    translations = np.broadcast_to(rest, (len(times), len(bones), 3)).copy()
    trajectory = None
    for ch in animation.channels:
        values = _read_accessor(doc, blob, animation.samplers[ch.sampler].output).astype(np.float64)
        node = ch.target.node
        if node not in slot:
            if doc.nodes[node].name == TRAJECTORY_NODE and ch.target.path == "translation":
                trajectory = values
            continue
        if ch.target.path == "rotation":
            rotations[:, slot[node]] = values[:, [3, 0, 1, 2]]
        elif ch.target.path == "translation":
            translations[:, slot[node]] = values
    inverse_bind = _read_accessor(doc, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    return {"names": [doc.nodes[n].name for n in bones], "parents": parents, "rest": rest, "times": times,
            "rotations": rotations, "translations": translations, "trajectory": trajectory,
            "inverse_bind": inverse_bind.astype(np.float64)}
