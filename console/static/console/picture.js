// Draws a graph (nodes and links as the console serves them) into an <svg> with a
// <g id="viewport">: laid out left to right by dagre, loops as dashed back-edges, static
// links thicker; drag pans and the wheel zooms. Returns the node boxes by id and `fit`.
window.drawGraph = function drawGraph(area, picture, onSelect) {
  const SVG = "http://www.w3.org/2000/svg";
  const BOX_W = 180, BOX_H = 62;
  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }
  const g = new dagre.graphlib.Graph({multigraph: true});
  g.setGraph({rankdir: "LR", nodesep: 24, ranksep: 70, edgesep: 12, marginx: 16, marginy: 16});
  g.setDefaultEdgeLabel(() => ({}));
  picture.nodes.forEach((n) => g.setNode(n.id, {width: BOX_W, height: BOX_H}));
  picture.links.forEach((l, i) => g.setEdge(l.source, l.target, {link: l}, `e${i}`));
  dagre.layout(g);
  const viewport = area.querySelector("#viewport");
  const edgesLayer = svg("g", {}, viewport), nodesLayer = svg("g", {}, viewport);
  g.edges().forEach((e) => {
    const edge = g.edge(e), link = edge.link;
    const back = g.node(e.w).x <= g.node(e.v).x;  // a loop: drawn as a visible back-edge
    const group = svg("g", {class: `edge${back ? " back" : ""}${link.static ? " static" : ""}`}, edgesLayer);
    const d = edge.points.map((p, i) => `${i ? "L" : "M"}${p.x},${p.y}`).join(" ");
    svg("path", {d, "marker-end": "url(#arrow)"}, group);
    svg("title", {}, group).textContent = `${link.source}.${link.label}${back ? " (loops back)" : ""}`;
  });
  const boxes = {};
  picture.nodes.forEach((n) => {
    const at = g.node(n.id);
    const box = svg("g", {class: "node", "data-node": n.id, "data-status": "", tabindex: "0",
                         role: "button", "aria-label": `${n.id} (${n.block})`,
                         transform: `translate(${at.x - BOX_W / 2},${at.y - BOX_H / 2})`}, nodesLayer);
    svg("rect", {width: BOX_W, height: BOX_H}, box);
    svg("text", {x: 10, y: 18}, box).textContent =
      n.name && n.name !== n.id ? `${n.id} · ${n.name}` : n.id;
    const sub = svg("text", {x: 10, y: 35, class: "sub"}, box);
    sub.textContent = n.block;
    svg("tspan", {class: "state"}, sub);  // a run's page writes the node's state here
    svg("text", {x: 10, y: 52, class: "plan"}, box);
    if (onSelect) {
      box.addEventListener("click", () => onSelect(n.id));
      box.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(n.id); }
      });
    }
    boxes[n.id] = box;
  });

  const size = g.graph();
  let view;
  const apply = () => area.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  // The whole graph, never drawn larger than life: a small one sits centred at 1:1.
  const fit = () => {
    const r = area.getBoundingClientRect();
    const w = Math.max(size.width, r.width || 300), h = Math.max(size.height, r.height || 150);
    view = {x: (size.width - w) / 2, y: (size.height - h) / 2, w, h};
    apply();
  };
  fit();
  area.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = area.getBoundingClientRect();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    const k = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    const w = view.w * k, h = view.h * k;
    view = {x: view.x + (view.w - w) * fx, y: view.y + (view.h - h) * fy, w, h};
    apply();
  }, {passive: false});
  let drag = null;
  area.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".node")) return;
    drag = {x: e.clientX, y: e.clientY, view: {...view}};
    area.setPointerCapture(e.pointerId);
  });
  area.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = area.getBoundingClientRect();
    view = {...drag.view, x: drag.view.x - (e.clientX - drag.x) * view.w / r.width,
            y: drag.view.y - (e.clientY - drag.y) * view.h / r.height};
    apply();
  });
  area.addEventListener("pointerup", () => { drag = null; });
  return {boxes, fit};
};
