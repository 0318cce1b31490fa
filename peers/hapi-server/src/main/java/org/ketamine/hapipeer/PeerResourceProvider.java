package org.ketamine.hapipeer;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.rest.annotation.RequiredParam;
import ca.uhn.fhir.rest.annotation.Search;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.param.TokenOrListParam;
import ca.uhn.fhir.rest.param.TokenParam;
import ca.uhn.fhir.rest.server.provider.HashMapResourceProvider;
import org.hl7.fhir.instance.model.api.IBase;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Identifier;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * HAPI's {@link HashMapResourceProvider} (create, PUT update-as-create, read, vread, instance history, delete,
 * search by {@code _id}) plus search by {@code identifier=[system|]value}, and an identifier count used by the
 * admin endpoint. Conditional operations are not supported (HashMapResourceProvider rejects a conditional
 * update with 400; {@code If-None-Exist} on create is ignored, as on any server that does not declare
 * conditionalCreate).
 */
public class PeerResourceProvider<T extends IBaseResource> extends HashMapResourceProvider<T> {

	public PeerResourceProvider(FhirContext theContext, Class<T> theType) {
		super(theContext, theType);
	}

	@Search(allowUnknownParams = true)
	public synchronized List<IBaseResource> searchByIdentifier(
			@RequiredParam(name = "identifier") TokenOrListParam theIdentifier, RequestDetails theRequestDetails) {
		List<IBaseResource> out = new ArrayList<>();
		for (T r : getAllResources()) {
			if (matchesAny(r, theIdentifier.getValuesAsQueryTokens())) {
				out.add(r);
			}
		}
		return out;
	}

	/** Current (not deleted) resources with an identifier matching {@code system|value} (or bare value). */
	public synchronized int countByIdentifier(String theToken) {
		TokenParam t = parseToken(theToken);
		int n = 0;
		for (T r : getAllResources()) {
			if (matchesAny(r, Collections.singletonList(t))) {
				n++;
			}
		}
		return n;
	}

	public synchronized int countAll() {
		return getAllResources().size();
	}

	static TokenParam parseToken(String theToken) {
		if (theToken == null) {
			return new TokenParam(null, "");
		}
		int bar = theToken.indexOf('|');
		if (bar < 0) {
			return new TokenParam(null, theToken);
		}
		return new TokenParam(theToken.substring(0, bar), theToken.substring(bar + 1));
	}

	private boolean matchesAny(T theResource, List<TokenParam> theTokens) {
		List<IBase> ids;
		try {
			ids = getFhirContext().newTerser().getValues(theResource, "identifier");
		} catch (Exception e) {
			return false; // this type has no identifier element
		}
		for (IBase b : ids) {
			if (!(b instanceof Identifier id)) {
				continue;
			}
			for (TokenParam t : theTokens) {
				boolean valueOk = t.getValue() == null || t.getValue().isEmpty() || t.getValue().equals(id.getValue());
				boolean systemOk = t.getSystem() == null || t.getSystem().equals(id.getSystem())
						|| (t.getSystem().isEmpty() && !id.hasSystem());
				if (valueOk && systemOk) {
					return true;
				}
			}
		}
		return false;
	}
}
