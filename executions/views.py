"""The live run page: the graph drawn as boxes and arrows, coloured as the run goes."""

from django.contrib.auth.decorators import login_required
from django.middleware.csrf import get_token
from django.shortcuts import render

from .drawing import layout
from .plans import plan_for_version
from .selectors import execution_get

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 170, 54, 70, 26, 20


@login_required
def live_run_page(request, execution_id):
    execution = execution_get(user=request.user, execution_id=execution_id)
    get_token(request)  # sets the CSRF cookie the Cancel button sends back
    plan = plan_for_version(execution.graph_version_id)
    cells = layout(plan)
    boxes = {
        node_id: {
            "id": node_id,
            "block": plan.nodes[node_id].block,
            "x": MARGIN + column * (BOX_W + GAP_X),
            "y": MARGIN + row * (BOX_H + GAP_Y),
        }
        for node_id, (column, row) in cells.items()
    }
    arrows = [
        {
            "x1": boxes[link.source_id]["x"] + BOX_W,
            "y1": boxes[link.source_id]["y"] + BOX_H / 2,
            "x2": boxes[link.sink_id]["x"],
            "y2": boxes[link.sink_id]["y"] + BOX_H / 2,
            "label": f"{link.source_name} → {link.sink_name}",
        }
        for links in plan.out_links.values()
        for link in links
    ]
    width = MARGIN * 2 + (max((c for c, _ in cells.values()), default=0) + 1) * (BOX_W + GAP_X)
    height = MARGIN * 2 + (max((r for _, r in cells.values()), default=0) + 1) * (BOX_H + GAP_Y)
    return render(
        request,
        "executions/live.html",
        {
            "execution": execution,
            "boxes": boxes.values(),
            "arrows": arrows,
            "width": width,
            "height": height,
            "box_w": BOX_W,
            "box_h": BOX_H,
        },
    )
