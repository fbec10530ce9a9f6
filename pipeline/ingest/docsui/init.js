// Starts Swagger UI on /openapi.json (served from /docs/init.js: the page's
// Content-Security-Policy allows no inline script). Not vendored: part of Sluice.
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    validatorUrl: null,
    supportedSubmitMethods: ['get', 'post'],
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
});
