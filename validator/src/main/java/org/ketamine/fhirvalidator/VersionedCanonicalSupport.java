package org.ketamine.fhirvalidator;

import ca.uhn.fhir.context.support.IValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.MetadataResource;

/**
 * Resolves versioned canonicals ({@code url|version}) against a support that only indexes unversioned URLs
 * (HAPI's DefaultProfileValidationSupport for FHIR R4 core): {@code .../StructureDefinition/Claim|4.0.1}
 * resolves to the core Claim when the core resource carries that version.
 */
final class VersionedCanonicalSupport extends BaseValidationSupport {

	private final IValidationSupport myDelegate;

	VersionedCanonicalSupport(IValidationSupport theDelegate) {
		super(theDelegate.getFhirContext());
		myDelegate = theDelegate;
	}

	@Override
	public String getName() {
		return "VersionedCanonicalSupport(" + myDelegate.getName() + ")";
	}

	private static IBaseResource matching(IBaseResource theRes, String theVersion) {
		if (theRes instanceof MetadataResource m && theVersion.equals(m.getVersion())) {
			return theRes;
		}
		return null;
	}

	private static int bar(String theUrl) {
		return theUrl == null ? -1 : theUrl.indexOf('|');
	}

	@Override
	public IBaseResource fetchStructureDefinition(String theUrl) {
		int b = bar(theUrl);
		return b < 0 ? null : matching(myDelegate.fetchStructureDefinition(theUrl.substring(0, b)), theUrl.substring(b + 1));
	}

	@Override
	public IBaseResource fetchValueSet(String theUrl) {
		int b = bar(theUrl);
		return b < 0 ? null : matching(myDelegate.fetchValueSet(theUrl.substring(0, b)), theUrl.substring(b + 1));
	}

	@Override
	public IBaseResource fetchCodeSystem(String theUrl) {
		int b = bar(theUrl);
		return b < 0 ? null : matching(myDelegate.fetchCodeSystem(theUrl.substring(0, b)), theUrl.substring(b + 1));
	}
}
