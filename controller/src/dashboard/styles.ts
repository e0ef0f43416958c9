/** The dashboard's one stylesheet. Colours pass WCAG AA against their text; every colour also has a word or a pattern. */
export const DASHBOARD_CSS = `
:root { --fg:#1f2328; --muted:#59636e; --bg:#fff; --panel:#f6f8fa; --line:#d1d9e0; --link:#0550ae; --focus:#bf5700;
  --healthy:#1a7f37; --failed:#cf222e; --progress:#0969da; --pending:#d1d9e0; --skipped:#6e7781; --offline:#59636e; --idle:#eaeef2; --warn:#9a6700; --degraded:#bc4c00; --drifted:#8250df; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, .host-cell:focus-visible { outline:3px solid var(--focus); outline-offset:2px; }
.skip { position:absolute; left:-999px; } .skip:focus { left:8px; top:8px; background:#fff; padding:4px 8px; z-index:2; }
header { display:flex; flex-wrap:wrap; align-items:center; gap:4px 20px; padding:10px 16px; background:#24292f; color:#fff; }
header a { color:#fff; text-decoration:none; font-weight:600; } header a[aria-current=page] { text-decoration:underline; text-underline-offset:4px; }
header .brand { font-size:18px; } header nav { display:flex; gap:16px; flex:1; } header form { margin:0; }
header button { background:transparent; color:#fff; border:1px solid #8c959f; }
main { max-width:1200px; margin:0 auto; padding:16px; }
h1 { font-size:22px; margin:4px 0 12px; } h2 { font-size:18px; margin:20px 0 8px; }
.muted { color:var(--muted); } code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
button, .button { font:inherit; padding:6px 14px; border-radius:6px; border:1px solid var(--line); background:var(--panel); color:var(--fg); cursor:pointer; text-decoration:none; display:inline-block; }
button.primary { background:var(--healthy); border-color:var(--healthy); color:#fff; }
button.danger { background:var(--failed); border-color:var(--failed); color:#fff; }
.flash { padding:8px 12px; border-radius:6px; margin-bottom:12px; border:1px solid; }
.flash.ok { background:#dafbe1; border-color:var(--healthy); } .flash.error { background:#ffebe9; border-color:var(--failed); }
.live-state { font-size:13px; color:var(--muted); margin:0 0 8px; }
.counts { display:flex; flex-wrap:wrap; gap:8px; margin:0 0 12px; padding:0; list-style:none; }
.counts li { background:var(--panel); border:1px solid var(--line); border-radius:6px; }
.counts a { display:block; padding:6px 12px; color:var(--fg); text-decoration:none; border-radius:6px; }
.counts a:hover { background:#eaeef2; } .counts a[aria-current] { outline:2px solid var(--fg); outline-offset:-2px; }
.counts li.zero { opacity:.7; }
#fleet-rows td:first-child a { white-space:nowrap; }
.counts strong { font-size:20px; display:block; }
.strip { list-style:none; margin:0 0 12px; padding:0; display:flex; flex-direction:column; gap:6px; }
.strip li { background:#ddf4ff; border:1px solid var(--progress); border-radius:6px; padding:6px 12px; }
.strip li[data-state=waiting-approval], .strip li[data-state=paused] { background:#fff8c5; border-color:var(--warn); }
.strip a { font-weight:600; }
.pager { display:flex; gap:16px; align-items:center; margin:12px 0; }
.filters input { font:inherit; padding:5px 8px; min-width:220px; border:1px solid #6e7781; border-radius:6px; }
.filters input.wide { min-width:min(480px, 80vw); }
code.path { display:block; overflow-wrap:anywhere; word-break:break-all; color:var(--muted); font-size:12px; }
.wrap { overflow-wrap:anywhere; }
.filters { display:flex; flex-wrap:wrap; gap:8px 16px; align-items:end; margin-bottom:12px; }
.filters label { display:flex; flex-direction:column; font-size:13px; color:var(--muted); }
.filters select { font:inherit; padding:5px; min-width:140px; }
table { border-collapse:collapse; width:100%; } th, td { text-align:left; padding:7px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:13px; color:var(--muted); font-weight:600; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:13px; font-weight:600; color:#fff; white-space:nowrap; }
.s-healthy { background:var(--healthy); } .s-failed { background:var(--failed); } .s-deploying, .s-in-progress { background:var(--progress); }
.s-offline { background:var(--offline); } .s-idle { background:var(--idle); color:var(--fg); } .s-pending { background:var(--pending); color:var(--fg); } .s-degraded { background:var(--warn); }
.s-skipped { background:var(--skipped); } .s-waiting { background:var(--warn); }
.s-rebooting { background:var(--progress); } .s-staged, .s-awaiting-reboot-grant { background:var(--pending); color:var(--fg); }
.host-cell.s-rebooting { background-image:repeating-radial-gradient(circle, rgba(255,255,255,.35) 0 3px, transparent 3px 8px); }
.host-cell.s-staged { background-image:repeating-linear-gradient(0deg, rgba(0,0,0,.12) 0 2px, transparent 2px 7px); }
.s-degraded { background:var(--degraded); } .s-drifted { background:var(--drifted); }
.s-paused { background:var(--pending); color:var(--fg); border:1px dashed var(--fg); }
.filters label.check { flex-direction:row; align-items:center; gap:6px; } .filters label.check input { width:auto; min-width:0; }
.host-actions { display:flex; flex-wrap:wrap; gap:8px 16px; align-items:end; } .host-action { margin:0; } .paused-note { margin-top:4px; }
.host-cell.s-waiting { background-image:repeating-linear-gradient(90deg, rgba(255,255,255,.3) 0 2px, transparent 2px 7px); }
.rollback-plan { margin:8px 0; } .rollback-plan td { font-size:14px; }
.sr-only { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.tag { display:inline-block; border:1px solid var(--line); border-radius:4px; padding:0 6px; font-size:12px; margin:0 4px 2px 0; }
.gen { display:block; overflow-wrap:anywhere; } .gen .mono { color:var(--muted); } .drift { color:var(--warn); font-weight:600; }
.waves { list-style:none; margin:0; padding:0; }
.wave { margin:0 0 14px; }
.wave-head { display:flex; flex-wrap:wrap; gap:4px 12px; align-items:baseline; margin-bottom:4px; }
.wave-head .current { font-weight:700; }
.bar { display:flex; flex-wrap:wrap; gap:2px; padding:3px; border:1px solid var(--line); border-radius:6px; background:#fff; }
.bar.current { border:2px solid var(--fg); }
.host-cell { flex:1 1 28px; min-width:18px; max-width:120px; height:28px; border-radius:3px; display:flex; align-items:center; justify-content:center; color:#fff; font-size:11px; text-decoration:none; overflow:hidden; white-space:nowrap; }
.host-cell.s-in-progress { background-image:repeating-linear-gradient(45deg, rgba(255,255,255,.25) 0 6px, transparent 6px 12px); }
.host-cell.s-skipped { background-image:repeating-linear-gradient(-45deg, rgba(255,255,255,.35) 0 3px, transparent 3px 8px); }
.host-cell.s-pending, .host-cell.s-idle { color:var(--fg); }
.canary-mark { font-size:12px; font-weight:700; color:var(--warn); border:1px solid var(--warn); border-radius:4px; padding:0 5px; }
.legend { display:flex; flex-wrap:wrap; gap:10px; list-style:none; padding:0; margin:8px 0; font-size:13px; }
.legend span.swatch { display:inline-block; width:14px; height:14px; border-radius:3px; vertical-align:-2px; margin-right:4px; }
.stats { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:8px; margin:0 0 12px; }
.stats > div { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
.stats dt { font-size:13px; color:var(--muted); } .stats dd { margin:0; font-weight:600; }
.threshold { height:10px; background:var(--idle); border-radius:5px; overflow:hidden; margin-top:4px; }
.threshold span { display:block; height:100%; background:var(--failed); }
.actions { display:flex; flex-wrap:wrap; gap:8px; margin:8px 0 16px; } .actions form { margin:0; }
.timeline { list-style:none; padding:0; margin:0; border-left:3px solid var(--line); }
.timeline li { margin:0 0 10px; padding:0 0 0 14px; position:relative; overflow-wrap:anywhere; }
.timeline li::before { content:""; position:absolute; left:-8px; top:6px; width:13px; height:13px; border-radius:50%; background:var(--line); }
.timeline li.k-failed::before { background:var(--failed); } .timeline li.k-healthy::before { background:var(--healthy); } .timeline li.k-manifest::before { background:var(--progress); }
.timeline time { font-size:13px; color:var(--muted); margin-right:6px; }
pre.tail { background:#1f2328; color:#f0f3f6; padding:10px; border-radius:6px; overflow-x:auto; max-height:320px; font-size:12.5px; white-space:pre-wrap; word-break:break-word; }
.login { max-width:420px; margin:48px auto; background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:20px; }
.login label { display:block; font-weight:600; margin-bottom:4px; } .login input { width:100%; font:inherit; padding:8px; margin-bottom:12px; border:1px solid #6e7781; border-radius:6px; }
.confirm { overflow-wrap:anywhere; max-width:560px; background:#fff8c5; border:1px solid var(--warn); border-radius:8px; padding:16px; }
@media (max-width: 700px) {
  main { padding:10px; }
  table.cards thead { display:none; }
  table.cards tr { display:block; border:1px solid var(--line); border-radius:6px; margin-bottom:8px; padding:4px 0; }
  table.cards td { display:block; position:relative; border:0; padding:4px 10px 4px 34%; min-height:1.9em; overflow-wrap:anywhere; }
  .filters label, .filters input, .filters select { width:100%; min-width:0; }
  .counts { gap:6px; } .counts a { padding:3px 8px; } .counts strong { font-size:16px; display:inline; margin-right:4px; }
  table.cards td::before { content:attr(data-label); position:absolute; left:10px; width:30%; color:var(--muted); font-size:13px; }
  .host-cell { flex-basis:22px; height:32px; }
}
`;
