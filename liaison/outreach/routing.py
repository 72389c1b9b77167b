"""A liaison's day route: the order to visit offices so that every lunch starts in its window.

Method (docs/outreach.md, "Day route"): a vehicle-routing problem with time windows solved by
OR-Tools. Travel time between two points is the straight-line (great-circle) distance times a
road factor (LIAISON_ROAD_FACTOR, 1.3 by default) at an average speed (LIAISON_ROUTE_MPH), in
whole minutes. Each stop has a visit length (service time) and optionally a window in which the
visit must start (a lunch: e.g. 11:30-12:30). The day starts at the chosen time from a site or
from home, and ends by the end of the day, back at the start unless asked otherwise. A stop
that cannot fit is dropped and reported, never silently violated; every returned arrival is
checked against its window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from liaison.core.geo import haversine_miles

DROP_PENALTY = 1_000_000  # minutes: dropping a stop costs more than any detour


@dataclass(frozen=True)
class Stop:
    key: object
    label: str
    latitude: float
    longitude: float
    service_minutes: int = 20
    window: tuple[int, int] | None = None  # minutes after midnight: earliest and latest start
    address: str = ""


@dataclass(frozen=True)
class Leg:
    stop: Stop
    arrival: int  # minutes after midnight (when the visit starts, after any wait)
    departure: int
    miles: float  # road miles from the previous point
    drive_minutes: int
    wait_minutes: int

    @property
    def in_window(self) -> bool:
        return self.stop.window is None or self.stop.window[0] <= self.arrival <= self.stop.window[1]


@dataclass
class DayPlan:
    legs: list[Leg]
    dropped: list[Stop]
    start_minute: int
    end_minute: int  # back at the start (or at the last stop when not returning)
    return_miles: float
    solve_seconds: float
    road_factor: float
    mph: float
    notes: list[str] = field(default_factory=list)

    @property
    def total_miles(self) -> float:
        return sum(leg.miles for leg in self.legs) + self.return_miles

    @property
    def windows_respected(self) -> bool:
        return all(leg.in_window for leg in self.legs)


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def road_miles(a: tuple[float, float], b: tuple[float, float], road_factor: float) -> float:
    return haversine_miles(a[0], a[1], b[0], b[1]) * road_factor


def _matrix(points: Sequence[tuple[float, float]], road_factor: float, mph: float) -> tuple[list, list]:
    n = len(points)
    miles = [[0.0] * n for _ in range(n)]
    minutes = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j:
                m = road_miles(points[i], points[j], road_factor)
                miles[i][j] = m
                minutes[i][j] = math.ceil(m / mph * 60)
    return miles, minutes


def plan_day(
    start: tuple[float, float],
    stops: Sequence[Stop],
    *,
    day_start: int = 8 * 60,
    day_end: int = 17 * 60 + 30,
    return_to_start: bool = True,
    road_factor: float | None = None,
    mph: float | None = None,
    time_limit_seconds: float = 1.5,
    metaheuristic: str = "GREEDY_DESCENT",
) -> DayPlan:
    """Order `stops` from `start` (lat, lon) within the day, honouring every window."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    road_factor = road_factor or settings.LIAISON_ROAD_FACTOR
    mph = mph or settings.LIAISON_ROUTE_MPH
    began = time.perf_counter()
    points = [start] + [(s.latitude, s.longitude) for s in stops]
    miles, minutes = _matrix(points, road_factor, mph)
    if not return_to_start:
        for i in range(len(points)):
            minutes[i][0] = 0
            miles[i][0] = 0.0
    service = [0] + [max(0, int(s.service_minutes)) for s in stops]

    manager = pywrapcp.RoutingIndexManager(len(points), 1, 0)
    routing = pywrapcp.RoutingModel(manager)

    def transit(from_index: int, to_index: int) -> int:
        i, j = manager.IndexToNode(from_index), manager.IndexToNode(to_index)
        return minutes[i][j] + service[i]

    def drive(from_index: int, to_index: int) -> int:
        return minutes[manager.IndexToNode(from_index)][manager.IndexToNode(to_index)]

    transit_index = routing.RegisterTransitCallback(transit)
    drive_index = routing.RegisterTransitCallback(drive)
    routing.SetArcCostEvaluatorOfAllVehicles(drive_index)
    horizon = 24 * 60
    routing.AddDimension(transit_index, horizon, horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    time_dim.CumulVar(routing.Start(0)).SetRange(day_start, day_start)
    time_dim.CumulVar(routing.End(0)).SetRange(day_start, day_end)
    for node, stop in enumerate(stops, start=1):
        index = manager.NodeToIndex(node)
        earliest, latest = stop.window if stop.window else (day_start, day_end - service[node])
        time_dim.CumulVar(index).SetRange(max(day_start, earliest), min(latest, day_end - service[node]))
        routing.AddDisjunction([index], DROP_PENALTY)

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    # Greedy descent stops at its local optimum (milliseconds for a day's dozen stops); guided
    # local search keeps improving until the time limit (the benchmark compares the two).
    params.local_search_metaheuristic = getattr(routing_enums_pb2.LocalSearchMetaheuristic, metaheuristic)
    params.time_limit.FromMilliseconds(int(time_limit_seconds * 1000))
    solution = routing.SolveWithParameters(params)

    legs: list[Leg] = []
    dropped = list(stops)
    end_minute, return_miles, notes = day_start, 0.0, []
    if solution is None:
        notes.append("No route fits the day: shorten the visits or widen the windows.")
    else:
        visited = set()
        index = routing.Start(0)
        prev_node, prev_departure = 0, day_start
        while not routing.IsEnd(index := solution.Value(routing.NextVar(index))):
            node = manager.IndexToNode(index)
            visited.add(node)
            arrival = solution.Min(time_dim.CumulVar(index))
            drive_min = minutes[prev_node][node]
            legs.append(
                Leg(
                    stops[node - 1],
                    arrival,
                    arrival + service[node],
                    round(miles[prev_node][node], 1),
                    drive_min,
                    max(0, arrival - prev_departure - drive_min),
                )
            )
            prev_node, prev_departure = node, arrival + service[node]
        dropped = [s for n, s in enumerate(stops, start=1) if n not in visited]
        return_miles = round(miles[prev_node][0], 1) if return_to_start else 0.0
        end_minute = prev_departure + (minutes[prev_node][0] if return_to_start else 0)
    if dropped:
        notes.append(
            "Could not fit: "
            + ", ".join(s.label for s in dropped)
            + " (their windows or the day are too tight)."
        )
    plan = DayPlan(
        legs,
        dropped,
        day_start,
        end_minute,
        return_miles,
        time.perf_counter() - began,
        road_factor,
        mph,
        notes,
    )
    if dropped and metaheuristic == "GREEDY_DESCENT":
        # Greedy descent can stop at a local optimum that leaves a visit out; a second, longer
        # search (at most a second) often fits it in. Keep whichever visits more offices.
        deeper = plan_day(
            start, stops, day_start=day_start, day_end=day_end, return_to_start=return_to_start,
            road_factor=road_factor, mph=mph, time_limit_seconds=min(1.0, time_limit_seconds),
            metaheuristic="GUIDED_LOCAL_SEARCH",
        )  # fmt: skip
        deeper.solve_seconds += plan.solve_seconds
        if len(deeper.dropped) < len(plan.dropped):
            return deeper
        plan.solve_seconds = deeper.solve_seconds
    # The solver's arrivals honour the windows by construction; check anyway, it is cheap.
    assert plan.windows_respected, "routing returned a visit outside its window"
    return plan


def in_given_order(
    start: tuple[float, float],
    stops: Sequence[Stop],
    *,
    return_to_start: bool = True,
    road_factor: float | None = None,
) -> float:
    """Road miles of visiting `stops` in the order given (the baseline the benchmark compares with)."""
    road_factor = road_factor or settings.LIAISON_ROAD_FACTOR
    points = [start] + [(s.latitude, s.longitude) for s in stops] + ([start] if return_to_start else [])
    return sum(road_miles(points[i], points[i + 1], road_factor) for i in range(len(points) - 1))
