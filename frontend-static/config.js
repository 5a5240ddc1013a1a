// Deployment settings of the dashboard. A deployment may replace this file (for example with a
// volume mount); every key is optional.
//   apiUrl               base URL of the Vector Flow API; "" means the page's own origin
//                        (the API serves this page at /, and nginx proxies the API on :5173).
//   grafanaDashboardUrl  the provisioned "Vector Flow Overview" dashboard; the page adds
//                        var-stream_id=<selected stream>.
//   eventsPageSize       motion events per page of the timeline ("Load more" fetches the next); 20.
// No token here: a file served to everyone is no place for it. When the API has VF_API_TOKEN set,
// the dashboard asks for the token in a sign-in dialog and keeps it in the browser tab's session.
window.VF_CONFIG = {
  apiUrl: "",
  grafanaDashboardUrl: "http://localhost:3000/d/vector-flow/vector-flow-overview",
};
