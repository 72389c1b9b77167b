// The Opportunities map: our sites and the opportunities listed, redrawn when the list changes.
// Tiles only when MAP_TILE_URL is set (closed networks get the markers on a blank map).
(function () {
  function popup(o) {
    const box = document.createElement("div");
    const name = document.createElement("strong");
    name.textContent = o.name + " · " + Math.round(o.score);
    box.appendChild(name);
    if (o.practice) {
      box.appendChild(document.createElement("br"));
      box.appendChild(document.createTextNode(o.practice));
    }
    const why = document.createElement("p");
    why.textContent = o.why;
    box.appendChild(why);
    return box;
  }
  function draw() {
    const el = document.getElementById("market-map");
    const dataEl = document.getElementById("market-map-data");
    if (!el || !dataEl || !window.L) return;
    const data = JSON.parse(dataEl.textContent);
    if (!el._map) {
      el._map = L.map(el, { scrollWheelZoom: false });
      if (el.dataset.tiles) {
        L.tileLayer(el.dataset.tiles, { attribution: el.dataset.attribution || "", maxZoom: 18 }).addTo(el._map);
      }
      el._layer = L.layerGroup().addTo(el._map);
    }
    el._layer.clearLayers();
    const points = [];
    data.sites.forEach(function (s) {
      L.circleMarker([s.lat, s.lon], { radius: 10, color: "#1b5e20", weight: 3, fillColor: "#66bb6a", fillOpacity: 0.9 })
        .bindTooltip("Our " + s.name + " site").addTo(el._layer);
      points.push([s.lat, s.lon]);
    });
    data.opportunities.forEach(function (o) {
      L.circleMarker([o.lat, o.lon], { radius: 4 + o.score / 12, color: "#0d47a1", weight: 1, fillColor: "#42a5f5", fillOpacity: 0.6 })
        .bindPopup(popup(o)).addTo(el._layer);
      points.push([o.lat, o.lon]);
    });
    if (points.length) el._map.fitBounds(points, { padding: [24, 24], maxZoom: 12 });
    else el._map.setView([39.8, -98.6], 4);
    el.dataset.markers = String(points.length);
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "results") draw();
  });
})();
