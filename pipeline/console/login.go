package console

import (
	"net/http"
	"strings"
)

// getLogin is GET /login: a form for the admin token of an exposed console. It shows
// no data.
func (c *Console) getLogin(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "login", "Sign in", map[string]any{"Exposed": c.o.Exposed})
}

// postLogin is POST /login: it checks the token and keeps it in an HttpOnly,
// SameSite=Strict cookie for the session.
func (c *Console) postLogin(w http.ResponseWriter, r *http.Request) {
	if !c.o.Exposed {
		http.Redirect(w, r, "/pipeline", http.StatusSeeOther)
		return
	}
	tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	p, err := c.o.Verifier.Verify(r.Context(), tok)
	switch {
	case tok == "":
		c.fail(w, r, http.StatusUnauthorized, "No token given.")
		return
	case err != nil:
		c.fail(w, r, http.StatusUnauthorized, "The token was refused: "+err.Error()+".")
		return
	case !p.HasScope(ScopeAdmin):
		c.fail(w, r, http.StatusForbidden, "The token lacks scope admin.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieToken, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, Expires: p.Expires})
	http.Redirect(w, r, "/pipeline", http.StatusSeeOther)
}
