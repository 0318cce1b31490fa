package org.ketamine.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.ConceptValidationOptions;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CanonicalType;
import org.hl7.fhir.r4.model.ValueSet;

import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Claims the large external code systems that cannot be checked offline (LOINC, SNOMED CT, RxNorm, CPT,
 * HCPCS, ICD-10-CM, NDC, X12 code lists and value sets, CMS Place of Service, NUBC UB-04 code systems) and answers every question about them with a
 * "valid, but not checked offline" result at INFORMATION level, so the engine neither errors nor warns about
 * them. Value sets whose expansion needs one of these systems (intensional includes, whole-system includes)
 * are treated the same way for codes from those systems. Value sets that only enumerate codes are left to the
 * in-memory terminology service, which can check membership offline.
 */
public final class OfflineTerminologySupport extends BaseValidationSupport {

	public static final String PREFIX = "not checked offline: ";

	/** Exact system URLs (version suffix stripped, trailing slash ignored). */
	private static final List<String> EXACT = List.of(
			"http://loinc.org",
			"http://snomed.info/sct",
			"http://www.nlm.nih.gov/research/umls/rxnorm",
			"http://www.ama-assn.org/go/cpt",
			"http://www.cms.gov/medicare/coding/hcpcsreleasecodesets",
			"https://www.cms.gov/medicare/coding/hcpcsreleasecodesets",
			"http://hl7.org/fhir/sid/icd-10-cm",
			"http://hl7.org/fhir/sid/ndc");

	/** Prefixes (lower case) of system families. */
	private static final List<String> PREFIXES = List.of(
			"https://codesystem.x12.org/",
			"http://codesystem.x12.org/",
			"https://valueset.x12.org/",
			"https://www.nubc.org/codesystem/",
			"http://www.nubc.org/codesystem/",
			"http://valueset.x12.org/",
			"https://www.cms.gov/medicare/coding/place-of-service-codes/",
			"http://www.cms.gov/medicare/coding/place-of-service-codes/",
			"https://www.cms.gov/medicare/medicare-fee-for-service-payment/physicianfeesched/downloads/",
			"http://snomed.info/sct/");

	private final Map<String, Boolean> myValueSetNeedsExternal = new ConcurrentHashMap<>();

	public OfflineTerminologySupport(FhirContext theContext) {
		super(theContext);
	}

	@Override
	public String getName() {
		return "OfflineTerminologySupport";
	}

	/** True when the code system URL (optionally with |version) is one of the external systems. */
	public static boolean isExternal(String theSystem) {
		if (theSystem == null || theSystem.isBlank()) {
			return false;
		}
		String s = theSystem;
		int bar = s.indexOf('|');
		if (bar >= 0) {
			s = s.substring(0, bar);
		}
		s = s.trim().toLowerCase(Locale.ROOT);
		if (s.endsWith("/") && s.length() > 8) {
			String noSlash = s.substring(0, s.length() - 1);
			if (EXACT.contains(noSlash)) {
				return true;
			}
		}
		if (EXACT.contains(s)) {
			return true;
		}
		for (String p : PREFIXES) {
			if (s.startsWith(p)) {
				return true;
			}
		}
		return false;
	}

	/** True when the text mentions one of the external systems. */
	public static boolean mentionsExternal(String theText) {
		if (theText == null) {
			return false;
		}
		String t = theText.toLowerCase(Locale.ROOT);
		for (String e : EXACT) {
			if (t.contains(e)) {
				return true;
			}
		}
		for (String p : PREFIXES) {
			if (t.contains(p)) {
				return true;
			}
		}
		return false;
	}

	@Override
	public boolean isCodeSystemSupported(ValidationSupportContext theContext, String theSystem) {
		return isExternal(theSystem);
	}

	@Override
	public boolean isValueSetSupported(ValidationSupportContext theContext, String theValueSetUrl) {
		IBaseResource vs = theContext.getRootValidationSupport().fetchValueSet(theValueSetUrl);
		return vs instanceof ValueSet && needsExternal(theContext, (ValueSet) vs, new HashSet<>());
	}

	/**
	 * Whether a full expansion of this value set needs an external system (intensional or whole-system
	 * include of an external system, directly or through an included value set).
	 */
	public boolean needsExternal(ValidationSupportContext theContext, ValueSet theVs, Set<String> theSeen) {
		String url = theVs.getUrl();
		if (url != null) {
			Boolean cached = myValueSetNeedsExternal.get(url);
			if (cached != null) {
				return cached;
			}
			if (!theSeen.add(url)) {
				return false;
			}
		}
		boolean result = false;
		for (ValueSet.ConceptSetComponent inc : theVs.getCompose().getInclude()) {
			if (isExternal(inc.getSystem()) && (inc.hasFilter() || !inc.hasConcept())) {
				result = true;
				break;
			}
			for (CanonicalType sub : inc.getValueSet()) {
				IBaseResource subVs = theContext.getRootValidationSupport().fetchValueSet(sub.getValue());
				if (subVs instanceof ValueSet && needsExternal(theContext, (ValueSet) subVs, theSeen)) {
					result = true;
					break;
				}
			}
			if (result) {
				break;
			}
		}
		if (url != null) {
			myValueSetNeedsExternal.put(url, result);
		}
		return result;
	}

	private CodeValidationResult notChecked(String theSystem, String theCode, String theDisplay, String theVsUrl) {
		String msg = PREFIX + "code '" + theCode + "' in " + theSystem
				+ (theVsUrl != null ? " (value set " + theVsUrl + ")" : "")
				+ " cannot be verified without the external terminology";
		CodeValidationIssue issue = new CodeValidationIssue(msg, IssueSeverity.INFORMATION, "informational");
		issue.getDetails().getCodings().clear(); // no tx-issue-type coding fits "not checked"
		return new CodeValidationResult()
				.setCode(theCode)
				.setDisplay(theDisplay)
				.setCodeSystemName(theSystem)
				.setSeverity(IssueSeverity.INFORMATION)
				.setMessage(msg)
				.addIssue(issue);
	}

	@Override
	public CodeValidationResult validateCode(
			ValidationSupportContext theContext,
			ConceptValidationOptions theOptions,
			String theCodeSystem,
			String theCode,
			String theDisplay,
			String theValueSetUrl) {
		if (theValueSetUrl != null && !theValueSetUrl.isBlank()) {
			IBaseResource vs = theContext.getRootValidationSupport().fetchValueSet(theValueSetUrl);
			if (vs == null) {
				return null;
			}
			return validateCodeInValueSet(theContext, theOptions, theCodeSystem, theCode, theDisplay, vs);
		}
		if (isExternal(theCodeSystem)) {
			return notChecked(theCodeSystem, theCode, theDisplay, null);
		}
		return null;
	}

	@Override
	public CodeValidationResult validateCodeInValueSet(
			ValidationSupportContext theContext,
			ConceptValidationOptions theOptions,
			String theCodeSystem,
			String theCode,
			String theDisplay,
			IBaseResource theValueSet) {
		if (!(theValueSet instanceof ValueSet)) {
			return null;
		}
		ValueSet vs = (ValueSet) theValueSet;
		if (!needsExternal(theContext, vs, new HashSet<>())) {
			return null;
		}
		if (isExternal(theCodeSystem)) {
			return notChecked(theCodeSystem, theCode, theDisplay, vs.getUrl());
		}
		if (theCodeSystem == null || theCodeSystem.isBlank()) {
			// system inferred from the value set: fine if every include is external
			boolean allExternal = vs.getCompose().getInclude().stream()
					.allMatch(i -> isExternal(i.getSystem()));
			if (allExternal && vs.getCompose().hasInclude()) {
				return notChecked(vs.getCompose().getIncludeFirstRep().getSystem(), theCode, theDisplay, vs.getUrl());
			}
		}
		return null;
	}
}
