// hmu web page: pick models, generate a motion per model, animate them side by side as stick figures.
// Vanilla JS, no dependencies. The API is the gateway's own: GET /models, POST /generate, GET /jobs/{id}.
"use strict";

const CHAINS = {
  22: [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]],
  21: [[0, 11, 12, 13, 14, 15], [0, 16, 17, 18, 19, 20], [0, 1, 2, 3, 4], [3, 5, 6, 7], [3, 8, 9, 10]],
};
const CHAIN_COLORS = ["#dc2626", "#2563eb", "#1f2937", "#f97316", "#0891b2"]; // right leg, left leg, spine, arms
const POLL_MS = 400;
const KEY_STORE = "hmu-api-key";

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------------------------ API
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : response.statusText;
    throw new Error(`${method} ${path}: ${response.status} ${detail}`);
  }
  return { status: response.status, data };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// POST /generate; on 202 poll GET /jobs/{id} until the job ends. Resolves to the GenerateResult.
async function generate(request) {
  const { status, data } = await api("POST", "/generate", request);
  if (status === 200) return data;
  for (;;) {
    await sleep(POLL_MS);
    const job = (await api("GET", `/jobs/${data.job_id}`)).data;
    if (job.state === "succeeded") return job.result;
    if (job.state === "failed" || job.state === "cancelled") {
      const why = job.error ? `${job.error.code}: ${job.error.message}` : job.state;
      throw new Error(`generation on ${request.model} ${job.state} (${why})`);
    }
  }
}

// ------------------------------------------------------------------------------------------------ models
async function loadModels() {
  const selects = [$("model-a"), $("model-b")];
  try {
    const models = (await api("GET", "/models")).data;
    selects.forEach((s) => s.replaceChildren());
    $("model-b").append(new Option("(none)", ""));
    for (const m of models) {
      const label = m.parent ? `${m.id} (${m.method || "edited"} of ${m.parent})` : m.id;
      selects.forEach((s) => s.append(new Option(label, m.id)));
    }
    const base = models.find((m) => m.default) || models[0];
    if (base) $("model-a").value = base.id;
    const edited = models.find((m) => m.parent && (!base || m.id !== base.id));
    $("model-b").value = edited ? edited.id : "";
    setStatus(models.length ? `${models.length} model(s) available` : "no models installed", !models.length);
  } catch (error) {
    setStatus(`${error.message}${/40[13]/.test(error.message) ? " (enter an API key above)" : ""}`, true);
  }
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// ------------------------------------------------------------------------------------------------ drawing
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const unit = (a) => { const n = Math.hypot(...a) || 1; return [a[0] / n, a[1] / n, a[2] / n]; };

// A perspective camera that follows the root from the front-right, slightly above.
class Camera {
  constructor(joints, width, height) {
    this.floor = Math.min(...joints.map((frame) => Math.min(...frame.map((p) => p[1]))));
    this.height = Math.max(...joints.map((frame) => Math.max(...frame.map((p) => p[1])))) - this.floor;
    this.focal = 0.5 * height / Math.tan(0.5 * (40 * Math.PI / 180));
    this.cx = width / 2;
    this.cy = height / 2;
  }

  aim(root) { // look at the root (x, z), half the motion's height above the floor
    const target = [root[0], this.floor + 0.5 * Math.max(this.height, 1), root[2]];
    const az = Math.PI / 6, el = Math.PI / 9, dist = 2.2 * Math.max(this.height, 1.7);
    this.target = target;
    this.eye = [target[0] + dist * Math.cos(el) * Math.sin(az), target[1] + dist * Math.sin(el),
                target[2] + dist * Math.cos(el) * Math.cos(az)];
    this.back = unit(sub(this.eye, target));
    this.right = unit(cross([0, 1, 0], this.back));
    this.up = cross(this.back, this.right);
  }

  project(p) { // world point -> [x, y] pixels, or null when behind the camera
    const d = sub(p, this.eye);
    const depth = -dot(d, this.back);
    if (depth < 0.05) return null;
    return [this.cx + this.focal * dot(d, this.right) / depth, this.cy - this.focal * dot(d, this.up) / depth];
  }
}

function line(ctx, cam, a, b) {
  const p = cam.project(a), q = cam.project(b);
  if (!p || !q) return;
  ctx.moveTo(p[0], p[1]);
  ctx.lineTo(q[0], q[1]);
}

function drawGrid(ctx, cam) { // world-fixed 0.5 m grid around the camera target, so it scrolls as the body moves
  const step = 0.5, reach = 4, y = cam.floor, [tx, , tz] = cam.target;
  const x0 = Math.floor((tx - reach) / step) * step, x1 = Math.ceil((tx + reach) / step) * step;
  const z0 = Math.floor((tz - reach) / step) * step, z1 = Math.ceil((tz + reach) / step) * step;
  ctx.strokeStyle = "#d6d9df";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let x = x0; x <= x1 + 1e-9; x += step) line(ctx, cam, [x, y, z0], [x, y, z1]);
  for (let z = z0; z <= z1 + 1e-9; z += step) line(ctx, cam, [x0, y, z], [x1, y, z]);
  ctx.stroke();
}

function drawFrame(motion, frame) {
  const { ctx, cam, joints, chains } = motion;
  ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  cam.aim(joints[frame][0]);
  drawGrid(ctx, cam);
  // root trajectory on the floor
  ctx.strokeStyle = "#9ca3af";
  ctx.lineWidth = 2;
  ctx.beginPath();
  for (let t = 1; t < joints.length; t++) {
    const a = joints[t - 1][0], b = joints[t][0];
    line(ctx, cam, [a[0], cam.floor, a[2]], [b[0], cam.floor, b[2]]);
  }
  ctx.stroke();
  const pose = joints[frame];
  ctx.lineWidth = 4;
  ctx.lineCap = "round";
  chains.forEach((chain, c) => {
    ctx.strokeStyle = CHAIN_COLORS[c % CHAIN_COLORS.length];
    ctx.beginPath();
    for (let i = 1; i < chain.length; i++) line(ctx, cam, pose[chain[i - 1]], pose[chain[i]]);
    ctx.stroke();
  });
  ctx.fillStyle = "#111827";
  for (const p of pose) {
    const q = cam.project(p);
    if (!q) continue;
    ctx.beginPath();
    ctx.arc(q[0], q[1], 3, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// A time bar under the figure: timeline parts (alternating shades, ticks at the seams), an edit's kept
// ranges (green) and the current frame.
function drawBar(motion, frame) {
  const { ctx, joints } = motion;
  const w = ctx.canvas.width, y = ctx.canvas.height - 10, n = joints.length;
  const x = (f) => 8 + (w - 16) * f / n;
  ctx.fillStyle = "#e5e7eb";
  ctx.fillRect(x(0), y, x(n) - x(0), 6);
  (motion.segments || []).forEach((seg, i) => {
    ctx.fillStyle = i % 2 ? "#c7d2fe" : "#a5b4fc";
    ctx.fillRect(x(seg.start), y, x(seg.end) - x(seg.start), 6);
    if (i) {
      ctx.fillStyle = "#312e81";
      ctx.fillRect(x(seg.start) - 1, y - 4, 2, 14);
    }
  });
  ctx.fillStyle = "#86efac";
  for (const [a, b] of motion.kept || []) ctx.fillRect(x(a), y, x(b) - x(a), 6);
  ctx.fillStyle = "#111827";
  ctx.fillRect(x(frame) - 1, y - 3, 3, 12);
}

// ------------------------------------------------------------------------------------------------ player
const player = { motions: [], playing: true, start: 0, pausedAt: 0, fps: 20, framesDrawn: 0, raf: 0 };
window.hmuViewer = player; // for debugging and the browser test

function currentTime(now) { // seconds; a requestAnimationFrame stamp may precede `start` slightly
  return player.playing ? Math.max(0, now - player.start) / 1000 : player.pausedAt;
}

function tick(now) {
  const t = currentTime(now);
  let label = "";
  for (const m of player.motions) {
    const frame = Math.floor(t * player.fps) % m.joints.length;
    drawFrame(m, frame);
    drawBar(m, frame);
    const part = (m.segments || []).find((seg) => seg.start <= frame && frame < seg.end);
    label = `frame ${frame + 1} / ${m.joints.length} · ${player.fps} fps` + (part ? ` · ${part.text}` : "");
  }
  $("frame-label").textContent = label;
  player.framesDrawn += 1;
  player.raf = player.playing ? requestAnimationFrame(tick) : 0;
}

function togglePlay() {
  const now = performance.now();
  if (player.playing) {
    player.pausedAt = currentTime(now);
    player.playing = false;
    // draw the paused frame now: a frame already requested would otherwise change the picture after the pause
    if (player.raf) cancelAnimationFrame(player.raf);
    tick(now);
  } else {
    player.start = now - player.pausedAt * 1000;
    player.playing = true;
    if (!player.raf) player.raf = requestAnimationFrame(tick);
  }
  $("play").textContent = player.playing ? "Pause" : "Play";
}

// ------------------------------------------------------------------------------------------------ files
// The same request (same seed) with format=bvh or glb regenerates the identical motion as a file, on the rig
// and at the frame rate picked in the panel's download menu. A .glb is a download URL of the job (fetched with
// the API key), BVH text comes inline.
const RIGS = [["", "our 22 joints"], ["smpl", "SMPL"], ["mixamo", "Mixamo"], ["ue5_mannequin", "UE5 mannequin"]];
const FILE_FPS = [20, 24, 30, 60];

function fileOptions(motion) {
  const skeleton = motion.rigChoice.value || null;
  const fps = Number(motion.fpsChoice.value);
  const suffix = (skeleton ? `-${skeleton}` : "") + (fps !== 20 ? `-${fps}fps` : "");
  return { skeleton, fps, suffix };
}

async function fileBlob(motion, format, options) {
  const request = { ...motion.request, format, fps: options.fps };
  if (options.skeleton) request.skeleton = options.skeleton;
  const result = await generate(request);
  const sample = result.samples[0];
  if (format === "bvh") return new Blob([sample.bvh], { type: "application/octet-stream" });
  const response = await fetch(sample.file.url, { headers: headers() });
  if (!response.ok) throw new Error(`GET ${sample.file.url}: ${response.status}`);
  return new Blob([await response.arrayBuffer()], { type: "model/gltf-binary" });
}

async function downloadFile(event, motion, format) {
  event.preventDefault();
  const link = event.currentTarget;
  const options = fileOptions(motion);
  const label = format === "bvh" ? "download BVH" : "download glTF";
  const name = `${motion.model}-seed${motion.request.seed}${options.suffix}.${format}`;
  if (link.dataset.ready !== name) {
    link.textContent = `preparing ${format.toUpperCase()}…`;
    try {
      link.href = URL.createObjectURL(await fileBlob(motion, format, options));
      link.download = name;
      link.dataset.ready = name;
    } catch (error) {
      setStatus(error.message, true);
      link.textContent = label;
      return;
    }
    link.textContent = label;
  }
  const a = document.createElement("a"); // a fresh anchor: the click is not caught by this handler again
  a.href = link.href;
  a.download = link.download;
  document.body.append(a);
  a.click();
  a.remove();
}

function choice(className, values) {
  const select = document.createElement("select");
  select.className = className;
  for (const [value, text] of values) select.append(new Option(text, value));
  return select;
}

function fileLink(className, text) {
  const link = document.createElement("a");
  link.href = "#";
  link.className = className;
  link.textContent = text;
  return link;
}

function showMotions(motions) {
  const panels = $("panels");
  panels.replaceChildren();
  player.motions = [];
  for (const { result, request } of motions) {
    const sample = result.samples[0];
    const panel = document.createElement("div");
    panel.className = "panel";
    const title = document.createElement("h2");
    title.textContent = result.model + " ";
    const info = document.createElement("small");
    info.textContent = `seed ${sample.seed} · ${sample.length} frames`;
    title.append(info);
    const canvas = document.createElement("canvas");
    canvas.width = 480;
    canvas.height = 400;
    canvas.dataset.model = result.model;
    const menu = document.createElement("div");
    menu.className = "downloads";
    const rig = choice("rig", RIGS);
    const fps = choice("fps", FILE_FPS.map((f) => [String(f), `${f} fps`]));
    const bvh = fileLink("bvh", "download BVH");
    const glb = fileLink("glb", "download glTF");
    menu.append(rig, fps, bvh, glb);
    panel.append(title, canvas, menu);
    panels.append(panel);
    const joints = sample.joints;
    const motion = {
      request, joints, model: result.model, ctx: canvas.getContext("2d"), rigChoice: rig, fpsChoice: fps,
      cam: new Camera(joints, canvas.width, canvas.height), chains: CHAINS[joints[0].length] || [],
      jobId: result.job_id, segments: sample.segments, kept: sample.kept,
    };
    bvh.addEventListener("click", (event) => downloadFile(event, motion, "bvh"));
    glb.addEventListener("click", (event) => downloadFile(event, motion, "glb"));
    player.motions.push(motion);
    player.fps = result.fps || 20;
  }
  $("viewer").hidden = false;
  player.start = performance.now();
  player.pausedAt = 0;
  if (!player.playing) togglePlay();
  else if (!player.raf) player.raf = requestAnimationFrame(tick);
}

// ------------------------------------------------------------------------------------------------ form
// "text = seconds" on every line: a timeline (segments); otherwise one prompt.
function parseSegments(prompt) {
  const lines = prompt.split("\n").map((l) => l.trim()).filter(Boolean);
  const parts = lines.map((l) => l.match(/^(.*\S)\s*=\s*(\d+(?:\.\d+)?)\s*s?$/));
  if (!lines.length || parts.some((m) => !m)) return null;
  return parts.map((m) => ({ text: m[1], seconds: Number(m[2]) }));
}

// "0:40 120:196" -> [[0, 40], [120, 196]]; null when empty.
function parseKeep(value) {
  const items = value.split(/[\s,]+/).filter(Boolean);
  if (!items.length) return null;
  return items.map((item) => {
    const m = item.match(/^(\d+):(\d+)$/);
    if (!m) throw new Error(`keep ranges are start:end frames, got “${item}”`);
    return [Number(m[1]), Number(m[2])];
  });
}

// The request of one model: a timeline, an edit of the motion that model's panel shows, or one prompt.
function buildRequest(text, model, seed, length, keep) {
  const request = { model, seed, num_samples: 1, format: "joints", wait_seconds: 10 };
  const segments = parseSegments(text);
  if (keep) {
    const shown = player.motions.find((m) => m.model === model);
    if (!shown || !shown.jobId) throw new Error("generate a motion first: the edit keeps frames of the one shown");
    return { ...request, text, edit: { source: shown.jobId, keep } };
  }
  if (segments) return { ...request, segments };
  return { ...request, text, length_frames: length };
}

async function onGenerate(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text) return setStatus("type a prompt first", true);
  let keep;
  try {
    keep = parseKeep($("keep").value);
  } catch (error) {
    return setStatus(error.message, true);
  }
  const models = [$("model-a").value, $("model-b").value].filter(Boolean);
  if (!models.length) return setStatus("pick a model", true);
  // A fixed seed makes the motion reproducible (and its file downloads the same motion).
  const seed = $("seed").value === "" ? Math.floor(Math.random() * 2 ** 31) : Number($("seed").value);
  const length = $("length").value === "" ? null : Number($("length").value);
  $("generate").disabled = true;
  setStatus(`generating with ${models.join(" and ")} (seed ${seed})…`);
  try {
    const motions = await Promise.all(models.map(async (model) => {
      const request = buildRequest(text, model, seed, length, keep);
      return { request, result: await generate(request) };
    }));
    showMotions(motions);
    setStatus(`“${text.replace(/\n/g, " · ")}” · seed ${seed}`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

function init() {
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORE, $("api-key").value.trim());
    loadModels();
  });
  $("generate-form").addEventListener("submit", onGenerate);
  $("play").addEventListener("click", togglePlay);
  loadModels();
}

init();
