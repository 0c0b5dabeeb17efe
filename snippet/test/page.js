// Before the snippet: a GTM dataLayer, and a record of CSP violations for the tests to read.
window.dataLayer = window.dataLayer || [];
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
